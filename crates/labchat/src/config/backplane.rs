//! The cross-node backplane's settings: `--redis-url` or `--redis-cluster`, `--node-id`, the quiet-room check, the
//! outbox's bounds, the envelope version and the secrets.

use std::path::Path;

use labchat_broadcast_redis::{BackplaneSecrets, EnvelopeVersion, MIN_SECRET_BYTES, OutboxBounds, Topology};

use super::InvalidSetting;
use crate::app::BackplaneSettings;
use crate::cli::ServeArgs;

/// The Redis backplane, if `--redis-url` or `--redis-cluster` is set: it needs MongoDB (the nodes share their history
/// there), a node id that is not blank (default: the host name and the process id), a check
/// interval above zero and outbox bounds of at least one envelope.
pub(super) fn settings(args: &ServeArgs) -> Result<Option<BackplaneSettings>, InvalidSetting> {
    let (redis_url, topology) = match (args.redis_url.clone(), args.redis_cluster.as_deref()) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err(InvalidSetting::new("set only one of --redis-url and --redis-cluster")),
        (Some(url), None) => (url, Topology::Single),
        (None, Some(list)) => {
            let nodes: Vec<String> =
                list.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
            let Some(first) = nodes.first().cloned() else {
                return Err(InvalidSetting::new("--redis-cluster needs the URL of at least one node of the cluster"));
            };
            (first, Topology::Cluster { nodes })
        }
    };
    if args.mongo_uri.is_none() {
        return Err(InvalidSetting::new(
            "a backplane (--redis-url or --redis-cluster) needs --mongo-uri: the nodes share their history through MongoDB (the in-memory store is one node's alone)",
        ));
    }
    if args.backplane_check_interval.is_zero() {
        return Err(InvalidSetting::new("--backplane-check-interval must be greater than zero"));
    }
    if args.backplane_outbox_max_entries == 0
        || args.backplane_outbox_max_bytes == 0
        || args.backplane_reorder_max_per_room == 0
        || args.backplane_reorder_max_per_node == 0
    {
        return Err(InvalidSetting::new(
            "--backplane-outbox-max-entries, --backplane-outbox-max-bytes, --backplane-reorder-max-per-room and --backplane-reorder-max-per-node must be at least 1",
        ));
    }
    let outbox = OutboxBounds {
        max_entries: args.backplane_outbox_max_entries,
        max_bytes: args.backplane_outbox_max_bytes,
        max_age: args.backplane_outbox_max_age,
    };
    let node_id = match args.node_id.clone() {
        Some(id) if id.trim().is_empty() => return Err(InvalidSetting::new("--node-id must not be blank")),
        Some(id) => id,
        None => default_node_id(),
    };
    Ok(Some(BackplaneSettings {
        redis_url,
        topology,
        node_id,
        check_interval: args.backplane_check_interval,
        outbox,
        reorder_max_per_room: args.backplane_reorder_max_per_room,
        reorder_max_per_node: args.backplane_reorder_max_per_node,
        envelope_version: envelope_version(args)?,
        secrets: secrets(args)?,
    }))
}

/// `--backplane-version`: one of the window this release reads; 3 needs a secret.
fn envelope_version(args: &ServeArgs) -> Result<EnvelopeVersion, InvalidSetting> {
    let version = EnvelopeVersion::new(args.backplane_version)
        .map_err(|e| InvalidSetting::new(format!("--backplane-version: {e}")))?;
    if version.is_authenticated() && args.backplane_secret.is_none() && args.backplane_secret_file.is_none() {
        return Err(InvalidSetting::new(format!(
            "--backplane-version {} needs a backplane secret (--backplane-secret-file or LABCHAT_BACKPLANE_SECRET)",
            version.get()
        )));
    }
    Ok(version)
}

/// The current and previous secrets, each from its value or its file (not both), each at least
/// [`MIN_SECRET_BYTES`] long; a previous secret needs a current one.
fn secrets(args: &ServeArgs) -> Result<BackplaneSecrets, InvalidSetting> {
    let current =
        secret(args.backplane_secret.as_deref(), args.backplane_secret_file.as_deref(), "--backplane-secret")?;
    let previous = secret(
        args.backplane_previous_secret.as_deref(),
        args.backplane_previous_secret_file.as_deref(),
        "--backplane-previous-secret",
    )?;
    if current.is_none() && previous.is_some() {
        return Err(InvalidSetting::new("--backplane-previous-secret(-file) needs --backplane-secret(-file)"));
    }
    Ok(BackplaneSecrets { current, previous })
}

fn secret(value: Option<&str>, file: Option<&Path>, flag: &str) -> Result<Option<Vec<u8>>, InvalidSetting> {
    let secret = match (value, file) {
        (Some(_), Some(_)) => return Err(InvalidSetting::new(format!("set only one of {flag} and {flag}-file"))),
        (Some(s), None) => s.as_bytes().to_vec(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| InvalidSetting::new(format!("{flag}-file {}: {e}", path.display())))?
            .trim_end_matches(['\n', '\r'])
            .as_bytes()
            .to_vec(),
        (None, None) => return Ok(None),
    };
    if secret.len() < MIN_SECRET_BYTES {
        return Err(InvalidSetting::new(format!("{flag}: the secret must be at least {MIN_SECRET_BYTES} bytes")));
    }
    Ok(Some(secret))
}

/// The host name (from the kernel, else `$HOSTNAME`, else `labchat`) and the process id.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "labchat".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::cli::Command;
    use crate::config::temp_file::TempFile;
    use crate::config::{ServeSettings, effective_toml, parse_from};

    const BASE: [&str; 6] = [
        "--jwt-secret",
        "a-test-secret-of-32-bytes-length",
        "--mongo-uri",
        "mongodb://db",
        "--redis-url",
        "redis://cache/",
    ];

    fn args(flags: &[&str]) -> ServeArgs {
        let argv = ["labchat", "serve"].iter().chain(&BASE).chain(flags).map(OsString::from).collect();
        match parse_from(argv).unwrap_or_else(|e| panic!("{flags:?}: {e}")).command {
            Command::Serve(a) => *a,
            Command::Token(_) => panic!("not serve"),
        }
    }

    fn backplane(flags: &[&str]) -> Result<BackplaneSettings, InvalidSetting> {
        ServeSettings::try_from(args(flags)).map(|s| s.app.backplane.unwrap())
    }

    #[test]
    fn a_cluster_is_named_by_its_nodes_and_excludes_one_server() {
        assert_eq!(backplane(&[]).unwrap().topology, Topology::Single);
        let cluster = |list: &str| {
            let argv =
                ["labchat", "serve", "--jwt-secret", BASE[1], "--mongo-uri", "mongodb://db", "--redis-cluster", list];
            match parse_from(argv.iter().map(OsString::from).collect()).unwrap().command {
                Command::Serve(a) => ServeSettings::try_from(*a).map(|s| s.app.backplane.unwrap()),
                Command::Token(_) => panic!("not serve"),
            }
        };
        let b = cluster("redis://a:7000/, redis://:pw@b:7001/").unwrap();
        let nodes = vec!["redis://a:7000/".to_owned(), "redis://:pw@b:7001/".to_owned()];
        assert_eq!(b.topology, Topology::Cluster { nodes });
        let err = cluster(" , ").unwrap_err();
        assert!(err.0.contains("at least one node"), "{err}");
        let err = backplane(&["--redis-cluster", "redis://a:7000/"]).unwrap_err();
        assert!(err.0.contains("only one of --redis-url and --redis-cluster"), "{err}");
        let printed =
            effective_toml(&args(&["--redis-cluster", "redis://:pw-1@a:7000/,redis://:pw-2@b:7001/"])).unwrap();
        assert!(!printed.contains("pw-1") && !printed.contains("pw-2"), "{printed}");
    }

    #[test]
    fn the_version_defaults_to_the_previous_releases_and_three_needs_a_secret() {
        let b = backplane(&[]).unwrap();
        assert_eq!(b.envelope_version, EnvelopeVersion::OLDEST);
        assert_eq!(b.secrets, BackplaneSecrets::default());
        let err = backplane(&["--backplane-version", "3"]).unwrap_err();
        assert!(err.0.contains("--backplane-version 3 needs a backplane secret"), "{err}");
        for v in ["1", "4"] {
            let err = backplane(&["--backplane-version", v]).unwrap_err();
            assert!(err.0.starts_with("--backplane-version: ") && err.0.contains("2 and 3"), "{err}");
        }
        let b = backplane(&["--backplane-version", "3", "--backplane-secret", "sixteen-bytes-at-least"]).unwrap();
        assert_eq!(b.envelope_version, EnvelopeVersion::NEWEST);
    }

    #[test]
    fn the_secrets_come_from_values_or_files_and_are_checked_and_masked() {
        let current = TempFile::new("current-secret-0123456789\n");
        let current_arg = current.arg();
        let previous = TempFile::new("previous-secret-0123456789");
        let files = ["--backplane-secret-file", &current.arg(), "--backplane-previous-secret-file", &previous.arg()];
        let b = backplane(&files).unwrap();
        assert_eq!(b.secrets.current.as_deref(), Some(&b"current-secret-0123456789"[..]), "newline dropped");
        assert_eq!(b.secrets.previous.as_deref(), Some(&b"previous-secret-0123456789"[..]));
        let refused = [
            (vec!["--backplane-secret", "too-short"], "at least 16 bytes"),
            (vec!["--backplane-previous-secret", "previous-secret-0123456789"], "needs --backplane-secret"),
            (vec!["--backplane-secret", "x-0123456789abcdef", "--backplane-secret-file", &current_arg], "only one"),
            (vec!["--backplane-secret-file", "/nonexistent/secret"], "--backplane-secret-file /nonexistent/secret"),
        ];
        for (flags, needle) in refused {
            let err = backplane(&flags).unwrap_err();
            assert!(err.0.contains(needle), "{flags:?}: {err}");
        }
        let printed = effective_toml(&args(&[
            "--backplane-secret",
            "current-secret-0123456789",
            "--backplane-previous-secret",
            "previous-secret-0123456789",
        ]))
        .unwrap();
        assert!(!printed.contains("secret-0123456789"), "{printed}");
        assert!(printed.contains("backplane_version = 2"), "{printed}");
    }
}
