//! The command line: `fidomesh render`, `fidomesh crds`, …

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::load::load_paths;
use crate::mds::Mds;
use crate::settings::Settings;
use crate::translate::translate;

/// fidomesh: FIDO2 hardware-key identity for Linkerd authorization.
#[derive(Debug, Parser)]
#[command(name = "fidomesh", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the Linkerd objects for the fidomesh resources in files or directories.
    Render(RenderArgs),
    /// Print the fidomesh CustomResourceDefinitions.
    Crds,
    /// Serve the admission webhook.
    Serve(Box<crate::server::ServeArgs>),
    /// Make a CA and a serving certificate for the webhook, and the caBundle.
    Certs(CertsArgs),
    /// The decision for one object (or review, or set of resources), offline, same engine.
    DryRun(DryRunArgs),
    /// Run the data-driven policy cases of a policy directory (`DIR/tests/*.yaml`).
    Test(TestArgs),
}

/// Arguments of `dry-run`.
#[derive(Debug, clap::Args)]
pub struct DryRunArgs {
    /// The object, AdmissionReview or resources (JSON or YAML; `-` for standard input).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// The requester's username.
    #[arg(long = "as", default_value = "")]
    pub username: String,
    /// The requester's groups.
    #[arg(long = "as-group")]
    pub groups: Vec<String>,
    /// The credential ID the requester signed in with.
    #[arg(long)]
    pub credential_id: Option<String>,
    /// Authentication methods (default `hwk,user` with a credential ID).
    #[arg(long, value_delimiter = ',')]
    pub amr: Vec<String>,
    /// The operation to simulate for a plain object.
    #[arg(long, default_value = "CREATE", value_parser = ["CREATE", "UPDATE", "DELETE"])]
    pub operation: String,
    /// The policy bundle directory.
    #[arg(long, env = "FIDOMESH_POLICIES", default_value = "policies")]
    pub policies: PathBuf,
    /// The fidomesh resources the decision reads.
    #[arg(long, env = "FIDOMESH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Settings file (YAML).
    #[arg(long, env = "FIDOMESH_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// A decoded FIDO MDS3 payload (JSON).
    #[arg(long, env = "FIDOMESH_MDS_PAYLOAD")]
    pub mds_payload: Option<PathBuf>,
    /// The instant to decide at (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<jiff::Timestamp>,
}

/// Arguments of `certs`.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// The webhook's Service name.
    #[arg(long, default_value = "fidomesh")]
    pub service: String,
    /// The webhook's namespace.
    #[arg(long, default_value = "fidomesh-system")]
    pub namespace: String,
    /// Where to write ca.crt, tls.crt, tls.key and caBundle.
    #[arg(long)]
    pub out: PathBuf,
    /// Extra DNS names.
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// IP addresses (e.g. 127.0.0.1 for a local run).
    #[arg(long = "ip")]
    pub ips: Vec<std::net::IpAddr>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
}

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The policy directory.
    #[arg(default_value = "policies")]
    pub dir: PathBuf,
    /// Report which lines of each policy file the cases cover.
    #[arg(long)]
    pub coverage: bool,
}

/// Output formats of `render`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    /// Multi-document YAML.
    Yaml,
    /// One JSON array.
    Json,
}

/// Arguments of `render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// A YAML file or a directory (read recursively, `*.yaml` / `*.yml`); may repeat.
    #[arg(short = 'f', long = "filename", required = true)]
    pub paths: Vec<PathBuf>,
    /// The instant to translate at (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<jiff::Timestamp>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: OutputFormat,
    /// Settings file (YAML).
    #[arg(long, env = "FIDOMESH_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// A decoded FIDO MDS3 payload (JSON) whose statuses revoke models.
    #[arg(long, env = "FIDOMESH_MDS_PAYLOAD")]
    pub mds_payload: Option<PathBuf>,
}

/// Runs the command line; the exit code is 2 for bad input.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Render(args) => render(&args),
        Command::Crds => crate::crd::crds_yaml()
            .context("serializing CRDs")
            .and_then(|text| write_stdout(&text)),
        Command::Test(args) => return policy_test(&args),
        Command::Serve(args) => crate::server::serve(*args),
        Command::Certs(args) => certs(&args),
        Command::DryRun(args) => dry_run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Reads the settings file, or the defaults when none is given.
pub fn read_settings(path: Option<&PathBuf>) -> anyhow::Result<Settings> {
    match path {
        None => Ok(Settings::default()),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Settings::from_yaml(&text).with_context(|| format!("{}", p.display()))
        }
    }
}

/// Reads a decoded MDS3 payload, or no metadata when none is given.
pub fn read_mds(path: Option<&PathBuf>) -> anyhow::Result<Mds> {
    match path {
        None => Ok(Mds::empty()),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Mds::from_payload_json(&text).with_context(|| format!("{}", p.display()))
        }
    }
}

fn render(args: &RenderArgs) -> anyhow::Result<()> {
    let settings = read_settings(args.settings.as_ref())?;
    let mds = read_mds(args.mds_payload.as_ref())?;
    let loaded = load_paths(&args.paths)?;
    let at = args.at.unwrap_or_else(jiff::Timestamp::now);
    let translation = translate(&loaded.resources, &settings, &mds, at);
    loaded.check_consistency(&translation.problems)?;
    for d in &translation.dropped {
        eprintln!(
            "warning: MeshRoleBinding {}: {} not granted: {}",
            d.binding,
            d.subject,
            d.reason.code()
        );
    }
    let text = match args.output {
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(&translation.objects)?;
            s.push('\n');
            s
        }
        OutputFormat::Yaml => {
            let mut s = String::new();
            for o in &translation.objects {
                s.push_str("---\n");
                s.push_str(&serde_yaml::to_string(o)?);
            }
            s
        }
    };
    write_stdout(&text)
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn policy_test(args: &TestArgs) -> ExitCode {
    match run_policy_tests(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_policy_tests(args: &TestArgs) -> anyhow::Result<bool> {
    use crate::policy::Bundle;
    use crate::policytest::Suite;
    let bundle = Bundle::load_dir(&args.dir, std::time::Duration::from_secs(5))?;
    let suite = Suite::load(&args.dir)?;
    let results = suite.run(&bundle, None);
    let mut failed = 0usize;
    for r in &results {
        if r.passed() {
            continue;
        }
        failed += 1;
        println!("FAIL {} ({})", r.name, r.file.display());
        println!(
            "  expected deny {:?} warn {:?}",
            r.expected_deny, r.expected_warn
        );
        println!("  actual   deny {:?} warn {:?}", r.deny, r.warn);
        if let Some(e) = &r.error {
            println!("  error: {e}");
        }
    }
    let mut all_covered = true;
    if args.coverage {
        for (file, (covered, not)) in suite.coverage(&bundle)? {
            let total = covered.len() + not.len();
            let pct = if total == 0 {
                100.0
            } else {
                covered.len() as f64 * 100.0 / total as f64
            };
            println!(
                "coverage {file}: {pct:.1}% ({} of {total} lines)",
                covered.len()
            );
            if !not.is_empty() {
                all_covered = false;
                println!("  not covered: {:?}", not);
            }
        }
    }
    println!("bundle {}", bundle.digest());
    println!("{} passed, {} failed", results.len() - failed, failed);
    Ok(failed == 0 && all_covered)
}

fn certs(args: &CertsArgs) -> anyhow::Result<()> {
    use base64::Engine as _;
    let g = crate::server::tls::generate(
        &args.service,
        &args.namespace,
        &args.dns,
        &args.ips,
        args.days,
    )?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("ca.crt", &g.ca_pem)?;
    write("tls.crt", &g.cert_pem)?;
    write("tls.key", &g.key_pem)?;
    let bundle = base64::engine::general_purpose::STANDARD.encode(g.ca_pem.as_bytes());
    write("caBundle", &bundle)?;
    eprintln!(
        "wrote ca.crt, tls.crt, tls.key and caBundle to {}",
        args.out.display()
    );
    Ok(())
}

fn dry_run(args: &DryRunArgs) -> anyhow::Result<()> {
    use std::io::Read as _;
    use std::sync::Arc;
    let body = if args.file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        buf
    } else {
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?
    };
    let docs = crate::dryrun::parse_body(&body)?;
    let settings = Arc::new(read_settings(args.settings.as_ref())?);
    let mds = Arc::new(read_mds(args.mds_payload.as_ref())?);
    let resources = match &args.data_dir {
        Some(dir) => load_paths(std::slice::from_ref(dir))?.resources,
        None => crate::translate::Resources::default(),
    };
    let now = args.at.unwrap_or_else(jiff::Timestamp::now);
    let snapshot = crate::data::Snapshot::build(1, Arc::new(resources), settings.clone(), mds, now);
    let bundle =
        crate::policy::Bundle::load_dir(&args.policies, std::time::Duration::from_secs(5))?;
    let decider = crate::decide::Decider {
        prepared: Arc::new(bundle.with_facts(snapshot.facts())?),
        generation: snapshot.generation,
    };
    let amr = if args.amr.is_empty() && args.credential_id.is_some() {
        vec!["hwk".to_string(), "user".to_string()]
    } else {
        args.amr.clone()
    };
    let claims = crate::requester::Claims {
        username: args.username.clone(),
        groups: args.groups.clone(),
        credential_id: args.credential_id.clone(),
        aaguid: None,
        amr,
        auth_time: Some(now.as_second()),
        not_proven: Vec::new(),
    };
    let requester = crate::requester::resolve(
        claims,
        crate::requester::Source::Cli,
        &snapshot.keys,
        &settings,
        now,
    );
    let answer = crate::dryrun::run(
        docs,
        &args.operation,
        &requester,
        &snapshot,
        &decider,
        None,
        now,
    )?;
    let mut text = serde_json::to_string_pretty(&answer)?;
    text.push('\n');
    write_stdout(&text)
}
