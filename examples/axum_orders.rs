//! The orders API on axum behind zt. `cargo run --example axum_orders` (dev mode: prints
//! tokens). Environment: ZT_LISTEN, ZT_ISSUER, ZT_AUDIENCE, ZT_JWKS, ZT_MODE (see README).

mod orders;

use std::net::SocketAddr;

use orders::{DemoConfig, DevKey};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = DemoConfig::from_env()?;
    let dev = if config.jwks.is_none() { Some(DevKey::generate()?) } else { None };
    let guard = config.guard(dev.as_ref())?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    if let Some(dev) = &dev {
        dev.print_banner(&config, "axum");
    }
    tracing::info!(listen = %config.listen, mode = config.mode.as_str(), "axum orders demo listening");
    let app = orders::axum_app::app(guard, dev.map(|d| d.jwks));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
