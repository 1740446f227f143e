//! `embedded`: the registry inside a host application that has its own
//! routes and its own authentication (API keys in a user table), mapping
//! its users to registry identities through the caller extension.
//!
//! ```text
//! cargo run --example embedded            # images in memory
//! cargo run --example embedded -- ./data  # images in a data directory
//! ```

mod app;

use registry::storage::filesystem::Durability;
use registry::storage::Stores;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embedded: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let stores = match std::env::args_os().nth(1) {
        Some(dir) => Stores::data_dir(dir, Durability::Fsync).await?,
        None => Stores::in_memory(),
    };
    let users = app::Users::new(&[("alice", "alice-api-key"), ("bob", "bob-api-key")]);
    let (app, _registry) = app::app(stores, users, &app::TEAM_GRANTS).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:5001").await?;
    let addr = listener.local_addr()?;
    println!("host application with an embedded registry on http://{addr}");
    println!("alice may push to team/, bob may pull from it:");
    println!("  podman login --tls-verify=false -u alice -p alice-api-key {addr}");
    println!("  podman push --tls-verify=false IMAGE {addr}/team/app:v1");
    println!("  podman login --tls-verify=false -u bob -p bob-api-key {addr}");
    println!("  podman pull --tls-verify=false {addr}/team/app:v1");
    axum::serve(listener, app).await?;
    Ok(())
}
