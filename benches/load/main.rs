//! End-to-end load harness for any OCI registry (ours, CNCF Distribution, …).
//!
//! ```sh
//! cargo bench --bench load -- --url http://127.0.0.1:5000 [--user admin --password PW]
//!     [--pid SERVER_PID] [--rounds 3] [--concurrency 32] [--duration 5]
//!     [--only push-mono,push-chunked,pull,manifest,head-blob,small-images]
//!     [--blob-size 1GiB] [--chunked-size 256MiB] [--chunk-size 8MiB]
//!     [--webhook]
//! ```
//!
//! Measures monolithic push of a `--blob-size` blob, chunked push of a
//! `--chunked-size` blob in `--chunk-size` PATCHes, pull of a `--blob-size`
//! blob (warmed into the page cache by an untimed pull first), GET manifest by
//! tag and HEAD blob on `--concurrency` keep-alive connections for
//! `--duration` seconds (requests/s, p50, p99), and the push of `--images`
//! small images. Each figure is the median of `--rounds` rounds. With
//! `--pid`, the server's CPU use per test and its peak RSS (`VmHWM`) are
//! reported too. Blob bytes come from a lazy pseudo-random generator and are
//! streamed; nothing holds a blob in memory.
//!
//! Output: a human table, then one `RESULT <name> <value> <unit>` line per
//! figure for scripts (`benches/compare.sh`).

mod client;
mod data;
mod procfs;
mod pull;
mod push;
mod rate;
mod webhook;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use http::Method;

use client::{AuthMode, Registry, Result};
use data::Pattern;
use procfs::{CpuMeter, CpuUse};

const MIB: f64 = 1024.0 * 1024.0;

/// The tests the harness can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum Test {
    /// Monolithic push of one `--blob-size` blob (POST + PUT).
    PushMono,
    /// Chunked push of one `--chunked-size` blob in `--chunk-size` PATCHes.
    PushChunked,
    /// Pull of one `--blob-size` blob from the page cache.
    Pull,
    /// GET manifest by tag at `--concurrency`.
    Manifest,
    /// HEAD blob at `--concurrency`.
    HeadBlob,
    /// Push of `--images` small images.
    SmallImages,
}

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(name = "load", about = "Load harness for OCI registries")]
struct Args {
    /// Registry base URL (http only).
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    url: String,
    /// User name (Basic, or for the token endpoint).
    #[arg(long, env = "LOAD_USER")]
    user: Option<String>,
    /// Password or access token.
    #[arg(long, env = "LOAD_PASSWORD")]
    password: Option<String>,
    /// How credentials are sent: auto (token when the registry offers it), basic, token.
    #[arg(long, value_enum, default_value = "auto")]
    auth: AuthMode,
    /// PID of the server process: reports its CPU use and peak RSS (VmHWM).
    #[arg(long)]
    pid: Option<u32>,
    /// Connections (one task each) of the GET manifest and HEAD blob tests.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds each GET manifest / HEAD blob round lasts.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Comma-separated subset of tests to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Test>,
    /// Size of the monolithic push and of the pulled blob (e.g. 1GiB, 64MiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    blob_size: u64,
    /// Size of the chunked push.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    chunked_size: u64,
    /// Size of each PATCH of the chunked push.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    chunk_size: u64,
    /// Number of small images pushed by the small-images test.
    #[arg(long, default_value_t = 200)]
    images: usize,
    /// Small images in flight at once.
    #[arg(long, default_value_t = 4)]
    image_workers: usize,
    /// Layer size of each small image.
    #[arg(long, default_value = "16KiB", value_parser = parse_size)]
    layer_size: u64,
    /// Rounds; every figure is the median over them.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Namespace of the repositories used (`<ns>/app`, `<ns>/small-…`).
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Seed of pushed blobs (default: from the clock, so every run pushes new blobs).
    #[arg(long)]
    seed: Option<u64>,
    /// Configure one webhook (on `--namespace`, `manifest.pushed`) to a
    /// receiver in this process first, to compare push throughput with a
    /// webhook against none; the server needs `--webhook-allow-private`.
    #[arg(long)]
    webhook: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Parses `123`, `16KiB`, `8MiB`, `1GiB` (also `K`, `M`, `G`, all binary).
fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad size `{text}`"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("bad size unit in `{text}`")),
    };
    Ok(n * mult)
}

/// Values of one figure over the rounds.
struct Figure {
    unit: &'static str,
    values: Vec<f64>,
}

/// Every figure measured, by name.
#[derive(Default)]
struct Figures(BTreeMap<String, Figure>);

impl Figures {
    fn record(&mut self, name: &str, value: f64, unit: &'static str) {
        self.0
            .entry(name.to_string())
            .or_insert_with(|| Figure {
                unit,
                values: Vec::new(),
            })
            .values
            .push(value);
    }

    fn record_cpu(&mut self, name: &str, cpu: CpuUse) {
        if let Some(s) = cpu.server {
            self.record(&format!("{name}_srv_cpu"), s, "%");
        }
        if let Some(c) = cpu.client {
            self.record(&format!("{name}_cli_cpu"), c, "%");
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Fixed seeds of the blobs every round reads (pull, HEAD, manifest).
const PULL_SEED: u64 = 0x5EED_0001;
const IMAGE_SEED: u64 = 0x5EED_0002;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("load: error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let tests: Vec<Test> = if args.only.is_empty() {
        vec![
            Test::PushMono,
            Test::PushChunked,
            Test::Pull,
            Test::Manifest,
            Test::HeadBlob,
            Test::SmallImages,
        ]
    } else {
        args.only.clone()
    };
    let credentials = match (&args.user, &args.password) {
        (Some(u), Some(p)) => Some((u.clone(), p.clone())),
        (None, None) => None,
        _ => return Err("--user and --password go together".into()),
    };
    let registry = Registry::connect(&args.url, credentials, args.auth).await?;
    let pattern = Pattern::new();
    let base_seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let app = format!("{}/app", args.namespace);
    eprintln!(
        "load: {} (auth: {}), tests {:?}, {} round(s)",
        args.url,
        registry.auth_label(),
        tests,
        args.rounds
    );

    // Setup shared by the rounds: the pulled blob and the small image behind
    // GET manifest / HEAD blob, pushed once (untimed) when missing.
    let pull_digest = pattern.digest(PULL_SEED, args.blob_size);
    let layer_digest = data::digest_of(&pattern.bytes(IMAGE_SEED, args.layer_size));
    if tests.contains(&Test::Pull) {
        registry.authorize(&app).await?;
        if !push::blob_exists(&registry, &app, &pull_digest).await? {
            eprintln!("load: setup: pushing the {} byte pull blob", args.blob_size);
            push::monolithic(&registry, &pattern, &app, PULL_SEED, args.blob_size).await?;
        }
    }
    // The image behind GET manifest / HEAD blob; with --webhook it also
    // creates the namespace the webhook needs.
    if tests.contains(&Test::Manifest) || tests.contains(&Test::HeadBlob) || args.webhook {
        registry.authorize(&app).await?;
        push::push_image(
            &registry,
            &pattern,
            &app,
            "latest",
            IMAGE_SEED,
            args.layer_size,
        )
        .await?;
    }
    let receiver = match args.webhook {
        true => {
            let receiver = webhook::Receiver::start().await?;
            receiver.configure(&registry, &args.namespace).await?;
            eprintln!("load: webhook configured on {}", args.namespace);
            Some(receiver)
        }
        false => None,
    };

    let duration = Duration::from_secs_f64(args.duration);
    let mut figures = Figures::default();
    for round in 0..args.rounds {
        let seed = base_seed.wrapping_add(round as u64 * 1_000);
        for &test in &tests {
            registry.authorize(&app).await?;
            match test {
                Test::PushMono => {
                    let meter = CpuMeter::start(args.pid);
                    let t =
                        push::monolithic(&registry, &pattern, &app, seed, args.blob_size).await?;
                    let cpu = meter.stop();
                    figures.record("push_mono", mibps(args.blob_size, t), "MiB/s");
                    figures.record_cpu("push_mono", cpu);
                }
                Test::PushChunked => {
                    let (size, chunk) = (args.chunked_size, args.chunk_size);
                    let meter = CpuMeter::start(args.pid);
                    let t =
                        push::chunked(&registry, &pattern, &app, seed.wrapping_add(1), size, chunk)
                            .await?;
                    let cpu = meter.stop();
                    figures.record("push_chunked", mibps(size, t), "MiB/s");
                    figures.record_cpu("push_chunked", cpu);
                }
                Test::Pull => {
                    // Untimed pull first: the page cache forgets quickly here.
                    pull::pull(&registry, &app, &pull_digest, args.blob_size).await?;
                    let meter = CpuMeter::start(args.pid);
                    let t = pull::pull(&registry, &app, &pull_digest, args.blob_size).await?;
                    let cpu = meter.stop();
                    figures.record("pull", mibps(args.blob_size, t), "MiB/s");
                    figures.record_cpu("pull", cpu);
                }
                Test::Manifest | Test::HeadBlob => {
                    let (name, method, path) = if test == Test::Manifest {
                        (
                            "manifest_get",
                            Method::GET,
                            format!("/v2/{app}/manifests/latest"),
                        )
                    } else {
                        let path = format!("/v2/{app}/blobs/{layer_digest}");
                        ("blob_head", Method::HEAD, path)
                    };
                    let meter = CpuMeter::start(args.pid);
                    let r = rate::run(&registry, method, &path, args.concurrency, duration).await?;
                    let cpu = meter.stop();
                    figures.record(&format!("{name}_rps"), r.per_second, "req/s");
                    figures.record(&format!("{name}_p50"), ms(r.p50), "ms");
                    figures.record(&format!("{name}_p99"), ms(r.p99), "ms");
                    figures.record(&format!("{name}_errors"), r.errors as f64, "requests");
                    figures.record_cpu(name, cpu);
                }
                Test::SmallImages => {
                    let repo = format!("{}/small-{seed:x}", args.namespace);
                    registry.authorize(&repo).await?;
                    let meter = CpuMeter::start(args.pid);
                    let t = push::small_images(
                        &registry,
                        &pattern,
                        &repo,
                        seed,
                        args.images,
                        args.image_workers,
                        args.layer_size,
                    )
                    .await?;
                    let cpu = meter.stop();
                    figures.record("small_images", t.as_secs_f64(), "s");
                    figures.record_cpu("small_images", cpu);
                }
            }
        }
        eprintln!("load: round {}/{} done", round + 1, args.rounds);
    }
    if let Some(pid) = args.pid {
        if let Some(kib) = procfs::peak_rss_kib(pid) {
            figures.record("peak_rss", kib as f64 / 1024.0, "MiB");
        }
        if let Some(kib) = procfs::rss_kib(pid) {
            figures.record("rss", kib as f64 / 1024.0, "MiB");
        }
    }
    if let Some(receiver) = &receiver {
        // Deliveries trail the pushes a little: a moment to catch up.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let n = receiver.received.load(std::sync::atomic::Ordering::Relaxed);
        figures.record("webhook_deliveries", n as f64, "count");
    }
    report(&args, &registry, &figures);
    Ok(())
}

fn mibps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / MIB / t.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A value with about four significant digits.
fn short(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.4}"),
    }
}

/// Prints the human table, then the `RESULT` lines.
fn report(args: &Args, registry: &Registry, figures: &Figures) {
    println!();
    println!(
        "{} auth={} concurrency={} duration={}s blob={} chunked={}/{} images={}x{}B rounds={}",
        args.url,
        registry.auth_label(),
        args.concurrency,
        args.duration,
        args.blob_size,
        args.chunked_size,
        args.chunk_size,
        args.images,
        args.layer_size,
        args.rounds
    );
    println!("{:<24} {:>12} {:<9} rounds", "figure", "median", "unit");
    for (name, fig) in &figures.0 {
        let rounds: Vec<String> = fig.values.iter().map(|v| short(*v)).collect();
        println!(
            "{:<24} {:>12.2} {:<9} {}",
            name,
            median(&fig.values),
            fig.unit,
            rounds.join(" ")
        );
    }
    if registry.authenticated() {
        println!("(credentials used: {})", registry.auth_label());
    }
    for (name, fig) in &figures.0 {
        println!("RESULT {name} {:.3} {}", median(&fig.values), fig.unit);
    }
}
