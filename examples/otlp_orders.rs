//! The axum orders demo with its request spans exported over OTLP (issue 6):
//!
//! ```sh
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --example otlp_orders --features otlp
//! ```
//!
//! Every request's `zt.request` span (OpenTelemetry field names: `http.request.method`,
//! `url.path`, `http.route`, `http.response.status_code`, `client.address`, `enduser.id`,
//! plus `zt.decision`, `zt.reason`, `zt.request_id`, ...) becomes an OTLP span through
//! `tracing-opentelemetry`, sent as OTLP/HTTP protobuf to an OpenTelemetry Collector,
//! Jaeger, Tempo or any OTLP backend (`/v1/traces` under the endpoint). Denials stay
//! readable in the console through the fmt layer. The same `ZT_*` variables as
//! `axum_orders` apply.

mod orders;

use std::net::SocketAddr;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use orders::{DemoConfig, DevKey};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint =
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4318".into());
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("zt-orders-demo").build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    // The console at RUST_LOG (default INFO: denials, not every request); the exporter gets
    // every request's span, which zt emits at DEBUG (`span_level`).
    let console = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let exported = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("zt::request", tracing::Level::DEBUG);
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(console))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("zt")).with_filter(exported))
        .init();

    let config = DemoConfig::from_env()?;
    let dev = if config.needs_dev_key()? { Some(DevKey::generate()?) } else { None };
    let guard = config.guard(dev.as_ref())?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    if let Some(dev) = &dev {
        dev.print_banner(&config, "axum + OTLP");
    }
    tracing::info!(listen = %config.listen, otlp = %endpoint, "axum orders demo listening, spans exported over OTLP");
    let app = orders::axum_app::app(guard, dev.map(|d| d.jwks))?;
    let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>());
    tokio::select! {
        result = serve => result?,
        _ = tokio::signal::ctrl_c() => {}
    }
    // Flush the spans still in the batch before exiting.
    provider.shutdown()?;
    Ok(())
}
