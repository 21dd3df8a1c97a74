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

fn read_mds(path: Option<&PathBuf>) -> anyhow::Result<Mds> {
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
