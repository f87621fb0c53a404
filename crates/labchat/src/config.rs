//! Configuration layering: flags > `LABCHAT_*` environment > `--config` TOML file > defaults.
//!
//! clap handles flags, environment and defaults; the file fills in every setting that neither a
//! flag nor the environment gave, by turning its keys (the flag names in snake_case) into flags.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, ServeArgs};

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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, ConfigError> {
        parse_from(std::iter::once("labchat").chain(args.iter().copied()).map(OsString::from).collect())
    }

    fn file(body: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::new(body)
    }

    mod tempfile_path {
        use super::*;
        pub struct TempFile(pub std::path::PathBuf);
        impl TempFile {
            pub fn new(body: &str) -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "labchat-config-{}-{}.toml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                let mut f = std::fs::File::create(&path).unwrap();
                f.write_all(body.as_bytes()).unwrap();
                Self(path)
            }
            pub fn arg(&self) -> String {
                self.0.display().to_string()
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
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
