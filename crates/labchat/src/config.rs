//! Configuration layering: flags > `LABCHAT_*` environment > `--config` TOML file > defaults;
//! and the validated [`ServeSettings`] that `serve` runs on.
//!
//! clap handles flags, environment and defaults; the file fills in every setting that neither a
//! flag nor the environment gave, by turning its keys (the flag names in snake_case) into flags.
//! [`ServeSettings::try_from`] then checks every setting and maps it to what the application
//! is built from; each refusal names the flag.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use labchat_domain::{HistoryLimit, ObjectIdBytes, Request, RequestId, UserId};
use labchat_store_mongo::MongoSettings;
use labchat_transport_ws::{AuthSettings, JwtAlgorithm, WsConfig, protocol::DecodeLimits};

use crate::app::{Settings, StoreSettings};
use crate::cli::{Alg, Cli, Command, JwtArgs, LogFormat, ServeArgs};

mod admission;
mod backplane;
mod presence;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Flags or environment are invalid (clap's own message, which names the setting).
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// The config file is unreadable or invalid.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong, naming the setting.
        message: String,
    },
}

/// Parses the command line, layering the `--config` file of `serve` under flags and environment.
pub fn parse_from(argv: Vec<OsString>) -> Result<Cli, ConfigError> {
    let matches = Cli::command().try_get_matches_from(&argv)?;
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let Some(path) = serve.get_one::<std::path::PathBuf>("config") else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let mut argv = argv;
    argv.extend(file_args(path, serve)?);
    Ok(Cli::command().try_get_matches_from(&argv).and_then(|m| Cli::from_arg_matches(&m))?)
}

fn file_args(path: &Path, given: &clap::ArgMatches) -> Result<Vec<OsString>, ConfigError> {
    let err = |message: String| ConfigError::File { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").ok_or_else(|| err("no serve command".into()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let arg = serve
            .get_arguments()
            .find(|a| a.get_id().as_str() == key && !matches!(key.as_str(), "config" | "print_config" | "help"))
            .ok_or_else(|| err(format!("unknown setting {key:?} (keys are the serve flags in snake_case)")))?;
        if matches!(given.value_source(&key), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let long = arg.get_long().ok_or_else(|| err(format!("setting {key:?} has no flag")))?;
        let flag_takes_value = arg.get_action().takes_values();
        match value {
            toml::Value::Boolean(b) if !flag_takes_value => {
                if b {
                    out.push(format!("--{long}").into());
                }
            }
            toml::Value::Boolean(b) => out.push(format!("--{long}={b}").into()),
            toml::Value::String(s) if flag_takes_value => out.push(format!("--{long}={s}").into()),
            toml::Value::Integer(n) if flag_takes_value => out.push(format!("--{long}={n}").into()),
            toml::Value::Float(f) if flag_takes_value => out.push(format!("--{long}={f}").into()),
            other => {
                let want = if flag_takes_value { "a string or a number" } else { "true or false" };
                return Err(err(format!("setting {key:?} must be {want}, got {}", other.type_str())));
            }
        }
    }
    Ok(out)
}

/// The effective `serve` configuration as TOML, secrets masked. Usable as a config file.
pub fn effective_toml(args: &ServeArgs) -> Result<String, toml::ser::Error> {
    toml::to_string(args)
}

/// The `serve` arguments of a parsed command line, if it is `serve`.
pub fn serve_args(cli: &Cli) -> Option<&ServeArgs> {
    match &cli.command {
        Command::Serve(a) => Some(a),
        Command::Token(_) => None,
    }
}

/// A setting that cannot be used; the message names the flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

impl InvalidSetting {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Everything `labchat serve` runs on, validated: what the application is built from, where it
/// listens, and how the process runs.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// What [`crate::app::build`] builds the server from.
    pub app: Settings,
    /// The chat listener's address.
    pub listen: SocketAddr,
    /// The operations listener's address (probes and metrics), if any.
    pub ops_listen: Option<SocketAddr>,
    /// Runtime worker threads (`None`: one per core).
    pub workers: Option<usize>,
    /// In demo mode, the id of the seeded request.
    pub demo: Option<RequestId>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter, if given.
    pub log: Option<String>,
}

impl TryFrom<ServeArgs> for ServeSettings {
    type Error = InvalidSetting;

    fn try_from(args: ServeArgs) -> Result<Self, InvalidSetting> {
        let auth = auth_settings(&args.jwt, args.demo)?;
        let history_limit =
            HistoryLimit::new(args.history_limit).map_err(|e| InvalidSetting::new(format!("--history-limit: {e}")))?;
        let ws = ws_config(&args)?;
        if args.ops_listen == Some(args.listen) && args.listen.port() != 0 {
            return Err(InvalidSetting::new("--ops-listen must differ from --listen"));
        }
        if args.workers == Some(0) {
            return Err(InvalidSetting::new("--workers must be at least 1"));
        }
        let mut seed = match &args.seed_requests {
            Some(path) => {
                let json = std::fs::read_to_string(path)
                    .map_err(|e| InvalidSetting::new(format!("--seed-requests {}: {e}", path.display())))?;
                crate::app::parse_seed(&json).map_err(|e| {
                    let why = match e {
                        crate::app::AppError::Config(m) => m,
                        other => other.to_string(),
                    };
                    InvalidSetting::new(format!("--seed-requests {}: {why}", path.display()))
                })?
            }
            None => Vec::new(),
        };
        let demo = if args.demo {
            let id = RequestId::from_object_id(ObjectIdBytes::from_bytes(random_bytes::<12>()?));
            let teacher = UserId::parse("teacher-demo").map_err(|e| InvalidSetting::new(format!("--demo: {e}")))?;
            seed.push(Request::new(id, teacher));
            Some(id)
        } else {
            None
        };
        let backplane = backplane::settings(&args)?;
        let presence_burst = presence::burst(&args)?;
        let join_admission = admission::joins(&args)?;
        let store = match args.mongo_uri {
            Some(uri) => {
                if !seed.is_empty() {
                    return Err(InvalidSetting::new(
                        "--seed-requests and --demo use the in-memory store; drop --mongo-uri",
                    ));
                }
                StoreSettings::Mongo(MongoSettings {
                    uri,
                    database: args.mongo_db,
                    requests_collection: args.mongo_requests_collection,
                    creator_field: args.mongo_creator_field,
                    op_timeout: args.store_timeout,
                    batch_inserts: args.mongo_batch_inserts,
                })
            }
            None => StoreSettings::Memory { seed },
        };
        Ok(Self {
            app: Settings {
                auth,
                history_limit,
                ws,
                store,
                backplane,
                presence_burst,
                join_reuse: args.join_reuse,
                join_admission,
            },
            listen: args.listen,
            ops_listen: args.ops_listen,
            workers: args.workers,
            demo,
            log_format: args.log_format,
            log: args.log,
        })
    }
}

/// The transport's limits and timings, checked.
fn ws_config(args: &ServeArgs) -> Result<WsConfig, InvalidSetting> {
    let checks = [
        (args.max_message_chars == 0, "--max-message-chars must be at least 1"),
        (args.max_receipt_ids == 0, "--max-receipt-ids must be at least 1"),
        (
            !(args.rate_per_second > 0.0 && args.rate_burst >= 1.0),
            "--rate-per-second must be > 0 and --rate-burst at least 1",
        ),
        (
            args.max_frame_bytes < 1024
                || args.outbound_max_frames == 0
                || args.outbound_max_bytes < args.max_frame_bytes,
            "--max-frame-bytes must be at least 1024, --outbound-max-frames at least 1, and --outbound-max-bytes at least --max-frame-bytes",
        ),
        (args.ping_interval.is_zero(), "--ping-interval must be greater than zero"),
        (args.handshake_timeout.is_zero(), "--handshake-timeout must be greater than zero"),
        (args.max_pending_connections == 0, "--max-pending-connections must be at least 1"),
    ];
    if let Some((_, message)) = checks.iter().find(|(bad, _)| *bad) {
        return Err(InvalidSetting::new(*message));
    }
    Ok(WsConfig {
        decode: DecodeLimits { max_message_chars: args.max_message_chars, max_receipt_ids: args.max_receipt_ids },
        max_frame_bytes: args.max_frame_bytes,
        max_rooms_per_connection: args.max_rooms_per_connection,
        rate_per_second: args.rate_per_second,
        rate_burst: args.rate_burst,
        rate_close_after: args.rate_close_after,
        outbound_max_frames: args.outbound_max_frames,
        outbound_max_bytes: args.outbound_max_bytes,
        ping_interval: args.ping_interval,
        max_connections: args.max_connections,
        shutdown_grace: args.shutdown_grace,
        drain_delay: args.drain_delay,
        drain_window: args.drain_window,
        handshake_timeout: args.handshake_timeout,
        max_pending_connections: args.max_pending_connections,
        access_recheck_interval: args.access_recheck_interval,
        edit_window: args.edit_window,
        ..WsConfig::default()
    })
}

/// The HS256 secret from `--jwt-secret` or `--jwt-secret-file` (trailing newline dropped), if
/// either is given; both is an error.
pub fn read_secret(secret: Option<&str>, file: Option<&Path>) -> Result<Option<Vec<u8>>, InvalidSetting> {
    match (secret, file) {
        (Some(_), Some(_)) => Err(InvalidSetting::new("set only one of --jwt-secret and --jwt-secret-file")),
        (Some(s), None) => Ok(Some(s.as_bytes().to_vec())),
        (None, Some(path)) => {
            let s = std::fs::read_to_string(path)
                .map_err(|e| InvalidSetting::new(format!("--jwt-secret-file {}: {e}", path.display())))?;
            Ok(Some(s.trim_end_matches(['\n', '\r']).as_bytes().to_vec()))
        }
        (None, None) => Ok(None),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], InvalidSetting> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| InvalidSetting::new(format!("no randomness available: {e}")))?;
    Ok(b)
}

fn auth_settings(jwt: &JwtArgs, demo: bool) -> Result<AuthSettings, InvalidSetting> {
    let algorithm = match jwt.jwt_alg {
        Alg::Hs256 => JwtAlgorithm::Hs256,
        Alg::Rs256 => JwtAlgorithm::Rs256,
        Alg::Es256 => JwtAlgorithm::Es256,
    };
    let key = if algorithm == JwtAlgorithm::Hs256 {
        match read_secret(jwt.jwt_secret.as_deref(), jwt.jwt_secret_file.as_deref())? {
            Some(k) if k.len() < 16 => return Err(InvalidSetting::new("the HS256 secret must be at least 16 bytes")),
            Some(k) => k,
            None if demo => {
                let hex: String = random_bytes::<24>()?.iter().map(|b| format!("{b:02x}")).collect();
                hex.into_bytes()
            }
            None => {
                return Err(InvalidSetting::new(
                    "no JWT key: set --jwt-secret / --jwt-secret-file (or LABCHAT_JWT_SECRET), or try --demo",
                ));
            }
        }
    } else {
        let path = jwt
            .jwt_public_key_file
            .as_ref()
            .ok_or_else(|| InvalidSetting::new("RS256/ES256 need --jwt-public-key-file"))?;
        std::fs::read(path)
            .map_err(|e| InvalidSetting::new(format!("--jwt-public-key-file {}: {e}", path.display())))?
    };
    Ok(AuthSettings {
        algorithm,
        key,
        issuer: jwt.jwt_issuer.clone(),
        audience: jwt.jwt_audience.clone(),
        role_claim: jwt.jwt_role_claim.clone(),
    })
}

#[cfg(test)]
mod settings_tests;

#[cfg(test)]
mod temp_file;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, ConfigError> {
        parse_from(std::iter::once("labchat").chain(args.iter().copied()).map(OsString::from).collect())
    }

    fn file(body: &str) -> temp_file::TempFile {
        temp_file::TempFile::new(body)
    }

    #[test]
    fn the_file_fills_what_flags_do_not_give_and_flags_win() {
        let f = file(
            "history_limit = 50\nlisten = \"127.0.0.1:9999\"\ndemo = true\nping_interval = \"5s\"\njwt_alg = \"HS256\"\n",
        );
        let cli = parse(&["serve", "--config", &f.arg(), "--history-limit", "7"]).unwrap();
        let a = serve_args(&cli).unwrap();
        assert_eq!(a.history_limit, 7, "flag beats file");
        assert_eq!(a.listen.to_string(), "127.0.0.1:9999", "file beats default");
        assert!(a.demo);
        assert_eq!(a.ping_interval, std::time::Duration::from_secs(5));
        assert_eq!(a.max_message_chars, 4000, "default when nobody sets it");
    }

    #[test]
    fn the_example_file_is_valid_and_matches_the_defaults() {
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labchat.example.toml");
        let from_file = parse(&["serve", "--config", &example.display().to_string()]).unwrap();
        let defaults = parse(&["serve"]).unwrap();
        assert_eq!(
            effective_toml(serve_args(&from_file).unwrap()).unwrap(),
            effective_toml(serve_args(&defaults).unwrap()).unwrap()
        );
    }

    #[test]
    fn bad_files_name_the_setting() {
        for (body, needle) in [
            ("histroy_limit = 5", "unknown setting \"histroy_limit\""),
            ("history_limit = [1]", "history_limit"),
            ("demo = \"yes\"", "demo"),
            ("mongo_batch_inserts = \"maybe\"", "--mongo-batch-inserts"),
            ("this is not toml", "config file"),
        ] {
            let f = file(body);
            let err = parse(&["serve", "--config", &f.arg()]).unwrap_err().to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
        let f = file("history_limit = \"many\"");
        let err = parse(&["serve", "--config", &f.arg()]).unwrap_err().to_string();
        assert!(err.contains("--history-limit"), "{err}");
    }

    #[test]
    fn print_config_masks_secrets_and_round_trips() {
        let cli =
            parse(&["serve", "--jwt-secret", "super-secret-value-123", "--mongo-uri", "mongodb://app:pw@db:27017/x"])
                .unwrap();
        let text = effective_toml(serve_args(&cli).unwrap()).unwrap();
        assert!(!text.contains("super-secret-value-123") && !text.contains(":pw@"), "{text}");
        assert!(text.contains("mongodb://app:********@db:27017/x"), "{text}");
        // The printed configuration is itself a valid config file.
        let f = file(&text.replace("\"********\"", "\"another-secret-value-456\""));
        let again = parse(&["serve", "--config", &f.arg()]).unwrap();
        assert_eq!(serve_args(&again).unwrap().history_limit, 200);
    }
}
