//! The orders API on actix-web behind zt. `cargo run --example actix_orders` (dev mode:
//! prints tokens). Environment: the same ZT_* variables as axum_orders (see README).

mod orders;

use orders::actix_app::{routes, server, server_tls};
use orders::{DemoConfig, DevKey};

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    // Start-up errors are printed with `Display` (file, line, key path), not `Debug`.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("actix_orders: {e}");
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
    let listener = std::net::TcpListener::bind(config.listen)?;
    if let Some(dev) = &dev {
        dev.print_banner(&config, "actix-web");
    }
    tracing::info!(listen = %config.listen, mode = guard.mode().as_str(), "actix-web orders demo listening");
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let routes = routes(guard, dev.map(|d| d.jwks))?;
    match config.tls()? {
        Some(tls) => server_tls(routes, listener, workers, tls)?.await?,
        None => server(routes, listener, workers)?.await?,
    }
    Ok(())
}
