//! The orders API on axum behind zt. `cargo run --example axum_orders` (dev mode: prints
//! tokens). Environment: ZT_LISTEN, ZT_ISSUER, ZT_AUDIENCE, ZT_JWKS, ZT_MODE, ZT_POLICY,
//! ZT_RATE, ZT_RATE_BURST, ZT_RATE_ANON, ZT_TRUSTED_PROXIES, ZT_REDIS_URL, ZT_TLS_CERT,
//! ZT_TLS_KEY, ZT_CLIENT_CA (see README).

mod orders;

use std::net::SocketAddr;

use orders::{DemoConfig, DevKey};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Start-up errors are printed with `Display` (file, line, key path), not `Debug`.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum_orders: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = DemoConfig::from_env()?;
    let dev = if config.needs_dev_key()? { Some(DevKey::generate()?) } else { None };
    let guard = config.guard(dev.as_ref())?;
    // Fail at start-up, naming the issuer, when its remote keys cannot be fetched.
    guard.fetch_keys().await?;
    // KPIs in the Prometheus text format (ZT_METRICS_LISTEN, default 127.0.0.1:9464).
    zt::observe::install_prometheus(config.metrics_listen)?;
    let tls = config.tls()?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    if let Some(dev) = &dev {
        dev.print_banner(&config, "axum");
    }
    tracing::info!(listen = %config.listen, mode = guard.mode().as_str(), tls = tls.is_some(), "axum orders demo listening");
    let app = orders::axum_app::app(guard, dev.map(|d| d.jwks))?;
    match tls {
        Some(tls) => zt::axum::tls::serve(listener, app, tls).await?,
        None => axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?,
    }
    Ok(())
}
