//! `cdvm`: the ConfidentialDVM user CLI.

mod cli_demo;
mod cli_verify;
mod cli_verify_gpu;
mod large_input;
mod show;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cdvm_attestation::Policy;
use cdvm_client::rag::RagRequest;
use cdvm_client::{run_job, ClientError, JobSpec, Timeouts};
use cdvm_protocol::nostr::{FromBech32, Keys, PublicKey};
use cdvm_protocol::rag::RagParams;
use cdvm_protocol::{kinds, Data, InputBody};
use clap::{Parser, Subcommand};

/// Run a confidential job on a Nostr DVM: your input goes only to a VM that proved what it is.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system locally (relay, orchestrator, simulated TEE) and one job through it.
    Demo(cli_demo::DemoArgs),
    /// Submit a job to a DVM, verify its VM, send the input, print the result.
    Submit(SubmitArgs),
    /// Verify saved evidence offline against a policy: an attestation event, CPU evidence, or
    /// (with --gpu and --nonce) GPU evidence on its own.
    Verify(cli_verify::VerifyArgs),
    /// Run a local Nostr relay on 127.0.0.1 until Ctrl-C (for trying the pieces by hand).
    Relay {
        /// The port.
        #[arg(long, default_value_t = 7777)]
        port: u16,
    },
}

#[derive(Debug, clap::Args)]
struct SubmitArgs {
    /// Relay URL (repeatable).
    #[arg(long = "relay", required = true)]
    relays: Vec<String>,
    /// The DVM's public key (npub or hex).
    #[arg(long)]
    dvm: String,
    /// Job kind: 5970 (SQL over a CSV table), 5971 (text statistics) or 5050 (a question
    /// answered from your documents by the VM's language model, with citations).
    #[arg(long)]
    kind: u16,
    /// The confidential input: a file (CSV for 5970, text for 5971; for 5050 a document in plain
    /// text .txt, Markdown .md or HTML .html) or a folder (several CSV tables, text files, or
    /// documents; sent as a tar archive). Small files go inside the encrypted input event; larger
    /// ones and folders as an encrypted blob through Blossom. For 5050 every file's format is
    /// checked first: a PDF or Word file is refused before anything is uploaded.
    #[arg(long)]
    input: PathBuf,
    /// Blossom server for large inputs and results (repeatable; each one holds a copy). Default:
    /// your kind-10063 server list (with --key), else the servers the DVM suggests.
    #[arg(long = "blossom")]
    blossom: Vec<String>,
    /// The SQL query (5970). Sent encrypted, like the input.
    #[arg(long)]
    query: Option<String>,
    /// The attestation policy the VM must satisfy (YAML).
    #[arg(long)]
    policy: PathBuf,
    /// Write the result here instead of standard output. For 5050 the answer is still printed,
    /// with its citations, and the file receives it as JSON (answer, citations with their
    /// passages, models, token counts).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Your secret key file (hex or nsec); default: a fresh one-time key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Seconds to wait for a verified attestation.
    #[arg(long, default_value_t = 120)]
    attest_timeout: u64,
    /// Seconds to wait for the result after sending the input.
    #[arg(long, default_value_t = 300)]
    result_timeout: u64,
    /// Folder of cached VCEKs, used when SEV-SNP evidence carries no certificate chain (hosts
    /// that supply none, such as upstream KVM).
    #[arg(long, default_value_os_t = cli_verify::default_cache())]
    vcek_cache: PathBuf,
    /// Fetch such a VCEK from AMD KDS when it is not cached (and cache it).
    #[arg(long)]
    fetch: bool,
    // Last: its help heading (RagArgs) applies to every flag after it.
    #[command(flatten)]
    rag: RagArgs,
}

/// The RAG job's question and parameters (kind 5050 only). Sent encrypted, like the input; a
/// parameter left out keeps the default shown.
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Kind 5050: a question over your documents")]
struct RagArgs {
    /// The question to answer from the documents in --input (5050; required there, refused for
    /// other kinds). At most 8 KiB.
    #[arg(long)]
    question: Option<String>,
    /// Most tokens the answer may take, 1 to 4096 [default: 256]. An answer cut short says so.
    #[arg(long, value_name = "N")]
    max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2 [default: 0: greedy decoding, the same documents and
    /// question give the same answer].
    #[arg(long, value_name = "T")]
    temperature: Option<f32>,
    /// The language model, by a name the DVM's image carries [default: the image's own].
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Passages retrieved into the prompt, 1 to 32 [default: 4]; fewer when the model's context
    /// is full.
    #[arg(long, value_name = "K")]
    retrieve: Option<u32>,
    /// Words per passage the documents are split into, 16 to 200 [default: 120].
    #[arg(long, value_name = "N")]
    chunk_words: Option<u32>,
    /// Words consecutive passages share, fewer than --chunk-words [default: 24].
    #[arg(long, value_name = "N")]
    overlap_words: Option<u32>,
}

impl RagArgs {
    /// The flags given, by name, for refusing them with another job kind.
    fn given(&self) -> Vec<&'static str> {
        [
            ("--question", self.question.is_some()),
            ("--max-tokens", self.max_tokens.is_some()),
            ("--temperature", self.temperature.is_some()),
            ("--model", self.model.is_some()),
            ("--retrieve", self.retrieve.is_some()),
            ("--chunk-words", self.chunk_words.is_some()),
            ("--overlap-words", self.overlap_words.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// The parameters: each flag given replaces its default.
    fn params(&self) -> RagParams {
        let d = RagParams::default();
        RagParams {
            model: self.model.clone().or(d.model),
            max_tokens: self.max_tokens.unwrap_or(d.max_tokens),
            temperature: self.temperature.unwrap_or(d.temperature),
            retrieve: self.retrieve.unwrap_or(d.retrieve),
            chunk_words: self.chunk_words.unwrap_or(d.chunk_words),
            overlap_words: self.overlap_words.unwrap_or(d.overlap_words),
            ..d
        }
    }
}

const KNOWN_KINDS: &str =
    "known: 5970 (SQL over CSV), 5971 (text statistics), 5050 (questions over your documents)";

/// Checks the flags that belong to one job kind, before anything is read or published: for 5050
/// the question (required) and its parameters; for the others, no RAG flag and (5970) a query.
fn kind_flags(args: &SubmitArgs) -> Result<Option<(String, RagParams)>, ClientError> {
    match args.kind {
        kinds::TEXT_GENERATION => {
            if args.query.is_some() {
                return Err(ClientError::Usage(
                    "--query is only for kind 5970 (SQL); kind 5050 takes --question".into(),
                ));
            }
            let question = args.rag.question.clone().ok_or_else(|| {
                ClientError::Usage(
                    "--question is required for kind 5050 (a question answered from your documents)"
                        .into(),
                )
            })?;
            Ok(Some((question, args.rag.params())))
        }
        kinds::SQL | kinds::TEXT_STATS => {
            // The same refusals as `input_body`, made before anything is uploaded.
            if args.kind == kinds::SQL && args.query.is_none() {
                return Err(ClientError::Usage(
                    "--query is required for kind 5970 (SQL)".into(),
                ));
            }
            if args.kind == kinds::TEXT_STATS && args.query.is_some() {
                return Err(ClientError::Usage("--query is only for kind 5970".into()));
            }
            let given = args.rag.given();
            if !given.is_empty() {
                let hint = if args.kind == kinds::SQL && args.rag.question.is_some() {
                    "; the SQL job takes its query as --query"
                } else {
                    ""
                };
                return Err(ClientError::Usage(format!(
                    "{} only for kind 5050 (questions over your documents), not {}{hint}",
                    match given.as_slice() {
                        [one] => format!("{one} is"),
                        many => format!("{} are", many.join(", ")),
                    },
                    args.kind
                )));
            }
            Ok(None)
        }
        other => Err(ClientError::Usage(format!(
            "unknown job kind {other}; {KNOWN_KINDS}"
        ))),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CDVM_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,nostr_relay_pool=error,nostr_sdk=error,nostr_relay_builder=off",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    // Offline verification needs no async runtime: keep that process start lean.
    let command = match cli.command {
        Command::Verify(args) => return exit(cli_verify::run(args)),
        other => other,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Demo(args) => cli_demo::run(args).await,
            Command::Submit(args) => submit(args).await,
            Command::Verify(args) => cli_verify::run(args),
            Command::Relay { port } => relay(port).await,
        }
    });
    exit(result)
}

fn exit(result: Result<(), ClientError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn read(path: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path).map_err(|source| ClientError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn load_policy(path: &Path) -> Result<Policy, ClientError> {
    Policy::load(path).map_err(|e| ClientError::Usage(e.to_string()))
}

/// The typed input body of the job kind around `data`.
fn input_body(kind: u16, data: Data, query: Option<String>) -> Result<InputBody, ClientError> {
    match kind {
        kinds::SQL => {
            let query = query.ok_or_else(|| {
                ClientError::Usage("--query is required for kind 5970 (SQL)".into())
            })?;
            Ok(InputBody::Sql {
                table_csv: data,
                query,
            })
        }
        kinds::TEXT_STATS => {
            if query.is_some() {
                return Err(ClientError::Usage("--query is only for kind 5970".into()));
            }
            Ok(InputBody::TextStats { text: data })
        }
        other => Err(ClientError::Usage(format!(
            "unknown job kind {other}; {KNOWN_KINDS}"
        ))),
    }
}

async fn submit(args: SubmitArgs) -> Result<(), ClientError> {
    let dvm = PublicKey::from_bech32(&args.dvm)
        .or_else(|_| PublicKey::from_hex(&args.dvm))
        .map_err(|_| {
            ClientError::Usage(format!(
                "--dvm {:?} is not an npub or hex public key",
                args.dvm
            ))
        })?;
    // Everything that can be refused locally is, before the policy, the relays or a server.
    let rag = match kind_flags(&args)? {
        Some((question, params)) => Some(RagRequest::new(&args.input, question, params)?),
        None => None,
    };
    let policy = load_policy(&args.policy)?;
    let user = match &args.key {
        Some(path) => Keys::parse(read(path)?.trim()).map_err(|_| {
            ClientError::Usage(format!("{} does not hold a secret key", path.display()))
        })?,
        None => Keys::generate(),
    };
    let prepared = large_input::prepare(
        &args.relays,
        &dvm,
        &user,
        args.kind,
        &args.input,
        &args.blossom,
        args.key.is_some(),
        rag.as_ref(),
    )
    .await?;
    let input = match &rag {
        Some(rag) => rag.body(prepared.data),
        None => input_body(args.kind, prepared.data, args.query)?,
    };
    let spec = JobSpec {
        relays: args.relays,
        dvm,
        kind: args.kind,
        input,
        policy,
        user,
        timeouts: Timeouts {
            attest: Duration::from_secs(args.attest_timeout),
            result: Duration::from_secs(args.result_timeout),
            ..Timeouts::default()
        },
        vcek: Some(cli_verify::resolver_for(&args.vcek_cache, args.fetch)),
        result_servers: prepared.servers,
        // A RAG answer is read whole (to show it, and to save it as pretty JSON), so even as a
        // blob it comes into memory, bounded by MAX_RESULT_IN_MEMORY, rather than to --output.
        result_file: if rag.is_some() {
            None
        } else {
            args.output.clone()
        },
        transfer_progress: Some(cdvm_client::blob::TransferProgress(std::sync::Arc::new(
            show::transfer,
        ))),
    };
    let outcome = run_job(spec, show::stage).await;
    // A job that fails while its answer streams must not print its error on the answer's line.
    show::end_answer_stream();
    let outcome = outcome?;
    if rag.is_some() {
        show::rag_outcome(&outcome, args.output.as_deref())
    } else {
        show::outcome(&outcome, args.output.as_deref())
    }
}

async fn relay(port: u16) -> Result<(), ClientError> {
    let relay = cdvm_client::relay::TestRelay::start_on(Some(port))
        .await
        .map_err(|e| ClientError::Relay(format!("cannot start a relay on port {port}: {e}")))?;
    eprintln!("relay listening on {} (Ctrl-C to stop)", relay.url());
    let _ = tokio::signal::ctrl_c().await;
    relay.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::CommandFactory;

    /// `cdvm submit` with a relay nothing listens on and a policy that does not exist: a test
    /// that gets its error from these flags proves the refusal came before either was touched.
    fn submit_args(extra: &[&str]) -> SubmitArgs {
        let dvm = Keys::generate().public_key().to_hex();
        let mut argv = vec![
            "cdvm",
            "submit",
            "--relay",
            "ws://127.0.0.1:9",
            "--dvm",
            &dvm,
            "--policy",
            "/nonexistent/policy.yaml",
        ];
        argv.extend(extra);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Submit(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn usage(result: Result<impl std::fmt::Debug, ClientError>) -> String {
        match result {
            Err(e @ ClientError::Usage(_)) => {
                assert_eq!(e.exit_code(), 2);
                e.to_string()
            }
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[tokio::test]
    async fn a_question_with_another_kind_is_refused_before_anything_else() {
        let args = submit_args(&[
            "--kind",
            "5970",
            "--input",
            "t.csv",
            "--query",
            "SELECT 1",
            "--question",
            "Why?",
        ]);
        let m = usage(kind_flags(&args));
        assert_eq!(
            m,
            "--question is only for kind 5050 (questions over your documents), not 5970; the SQL job takes its query as --query"
        );
        // The whole command stops there: no policy read, no relay contacted.
        assert_eq!(usage(submit(args).await), m);
        let args = submit_args(&[
            "--kind",
            "5971",
            "--input",
            "t.txt",
            "--max-tokens",
            "9",
            "--retrieve",
            "2",
        ]);
        assert_eq!(
            usage(kind_flags(&args)),
            "--max-tokens, --retrieve are only for kind 5050 (questions over your documents), not 5971"
        );
    }

    #[test]
    fn kind_5050_needs_a_question_and_takes_no_query() {
        let args = submit_args(&["--kind", "5050", "--input", "docs"]);
        assert!(usage(kind_flags(&args)).starts_with("--question is required for kind 5050"));
        let args = submit_args(&[
            "--kind",
            "5050",
            "--input",
            "docs",
            "--question",
            "Why?",
            "--query",
            "SELECT 1",
        ]);
        assert!(usage(kind_flags(&args)).starts_with("--query is only for kind 5970"));
        let args = submit_args(&["--kind", "5972", "--input", "docs"]);
        assert!(usage(kind_flags(&args)).contains("5050 (questions over your documents)"));
    }

    #[test]
    fn rag_flags_become_params_and_the_rest_keep_their_defaults() {
        let args = submit_args(&["--kind", "5050", "--input", "docs", "--question", "Why?"]);
        let (question, params) = kind_flags(&args).unwrap().unwrap();
        assert_eq!(question, "Why?");
        assert_eq!(params, RagParams::default());
        let args = submit_args(&[
            "--kind",
            "5050",
            "--input",
            "docs",
            "--question",
            "Why?",
            "--max-tokens",
            "64",
            "--temperature",
            "0.7",
            "--model",
            "qwen",
            "--retrieve",
            "8",
            "--chunk-words",
            "60",
            "--overlap-words",
            "10",
        ]);
        let (_, params) = kind_flags(&args).unwrap().unwrap();
        assert_eq!(
            params,
            RagParams {
                model: Some("qwen".into()),
                max_tokens: 64,
                temperature: 0.7,
                retrieve: 8,
                chunk_words: 60,
                overlap_words: 10,
                ..RagParams::default()
            }
        );
    }

    #[tokio::test]
    async fn an_unsupported_document_is_refused_before_any_upload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.md"), "# Notes").unwrap();
        std::fs::write(dir.path().join("report.pdf"), "%PDF-1.7").unwrap();
        let input = dir.path().display().to_string();
        let args = submit_args(&[
            "--kind",
            "5050",
            "--input",
            &input,
            "--question",
            "Why?",
            "--blossom",
            "http://127.0.0.1:9",
        ]);
        let m = usage(submit(args).await);
        assert!(
            m.starts_with("document `report.pdf`: .pdf files are not read (PDF)"),
            "{m}"
        );
    }
}
