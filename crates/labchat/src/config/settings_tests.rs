//! `ServeArgs` → `ServeSettings`: the mapping of every flag, and every refusal's message.

use std::time::Duration;

use super::*;

const SECRET: &str = "a-test-secret-of-32-bytes-length";

fn args(flags: &[&str]) -> ServeArgs {
    let argv = ["labchat", "serve"].iter().chain(flags).map(OsString::from).collect();
    match parse_from(argv).unwrap_or_else(|e| panic!("{flags:?}: {e}")).command {
        Command::Serve(a) => *a,
        Command::Token(_) => panic!("not serve"),
    }
}

fn settings(flags: &[&str]) -> Result<ServeSettings, InvalidSetting> {
    ServeSettings::try_from(args(flags))
}

#[test]
fn defaults_map_to_the_transport_defaults() {
    let s = settings(&["--jwt-secret", SECRET]).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.ops_listen, None);
    assert_eq!(s.workers, None);
    assert_eq!(s.demo, None);
    assert_eq!(s.app.auth.key, SECRET.as_bytes());
    assert_eq!(s.app.auth.algorithm, JwtAlgorithm::Hs256);
    assert_eq!(s.app.history_limit, HistoryLimit::DEFAULT);
    let (ws, d) = (&s.app.ws, WsConfig::default());
    assert_eq!(
        (ws.decode.max_message_chars, ws.decode.max_receipt_ids),
        (d.decode.max_message_chars, d.decode.max_receipt_ids)
    );
    assert_eq!(
        (ws.max_frame_bytes, ws.max_rooms_per_connection, ws.outbound_max_frames, ws.outbound_max_bytes),
        (d.max_frame_bytes, d.max_rooms_per_connection, d.outbound_max_frames, d.outbound_max_bytes)
    );
    assert_eq!(
        (ws.rate_per_second, ws.rate_burst, ws.rate_close_after),
        (d.rate_per_second, d.rate_burst, d.rate_close_after)
    );
    assert_eq!((ws.ping_interval, ws.shutdown_grace), (d.ping_interval, d.shutdown_grace));
    assert_eq!((ws.drain_delay, ws.drain_window), (d.drain_delay, d.drain_window));
    assert_eq!((ws.max_connections, ws.max_pending_connections), (d.max_connections, d.max_pending_connections));
    assert_eq!((ws.handshake_timeout, ws.access_recheck_interval), (d.handshake_timeout, d.access_recheck_interval));
    assert!(matches!(&s.app.store, StoreSettings::Memory { seed } if seed.is_empty()));
    assert_eq!(s.app.backplane, None, "no --redis-url: one node, as before");
}

#[test]
fn each_flag_reaches_its_setting() {
    let s = settings(&[
        "--jwt-secret",
        SECRET,
        "--listen",
        "127.0.0.1:7000",
        "--ops-listen",
        "127.0.0.1:7001",
        "--workers",
        "3",
        "--history-limit",
        "50",
        "--max-message-chars",
        "10",
        "--max-receipt-ids",
        "11",
        "--max-frame-bytes",
        "2048",
        "--max-rooms-per-connection",
        "4",
        "--rate-per-second",
        "2.5",
        "--rate-burst",
        "6",
        "--rate-close-after",
        "7s",
        "--outbound-max-frames",
        "8",
        "--outbound-max-bytes",
        "4096",
        "--ping-interval",
        "9s",
        "--max-connections",
        "12",
        "--shutdown-grace",
        "13s",
        "--handshake-timeout",
        "3s",
        "--max-pending-connections",
        "14",
        "--access-recheck-interval",
        "15s",
        "--mongo-uri",
        "mongodb://db:27017",
        "--mongo-db",
        "chat",
        "--mongo-requests-collection",
        "reqs",
        "--mongo-creator-field",
        "owner",
        "--mongo-batch-inserts",
        "false",
        "--store-timeout",
        "2s",
        "--drain-delay",
        "16s",
        "--drain-window",
        "0s",
        "--log-format",
        "json",
        "--log",
        "debug",
    ])
    .unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
    assert_eq!(s.ops_listen.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:7001"));
    assert_eq!(s.workers, Some(3));
    assert_eq!(s.app.history_limit.get(), 50);
    let ws = &s.app.ws;
    assert_eq!((ws.decode.max_message_chars, ws.decode.max_receipt_ids), (10, 11));
    assert_eq!((ws.max_frame_bytes, ws.max_rooms_per_connection), (2048, 4));
    assert_eq!((ws.rate_per_second, ws.rate_burst, ws.rate_close_after), (2.5, 6.0, Duration::from_secs(7)));
    assert_eq!((ws.outbound_max_frames, ws.outbound_max_bytes), (8, 4096));
    assert_eq!(
        (ws.ping_interval, ws.max_connections, ws.shutdown_grace),
        (Duration::from_secs(9), 12, Duration::from_secs(13))
    );
    assert_eq!((ws.handshake_timeout, ws.max_pending_connections), (Duration::from_secs(3), 14));
    assert_eq!(ws.access_recheck_interval, Duration::from_secs(15));
    assert_eq!((ws.drain_delay, ws.drain_window), (Duration::from_secs(16), Duration::ZERO));
    let StoreSettings::Mongo(m) = &s.app.store else { panic!("mongo expected") };
    assert_eq!((m.uri.as_str(), m.database.as_str()), ("mongodb://db:27017", "chat"));
    assert_eq!((m.requests_collection.as_str(), m.creator_field.as_str()), ("reqs", "owner"));
    assert_eq!((m.batch_inserts, m.op_timeout), (false, Duration::from_secs(2)));
    assert_eq!((s.log_format, s.log.as_deref()), (LogFormat::Json, Some("debug")));
}

#[test]
fn the_edge_settings_come_from_the_config_file_too() {
    let f = temp_file::TempFile::new(
        "ops_listen = \"127.0.0.1:9100\"\nhandshake_timeout = \"2s\"\nmax_pending_connections = 5\n",
    );
    let s = settings(&["--jwt-secret", SECRET, "--config", &f.arg()]).unwrap();
    assert_eq!(s.ops_listen.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:9100"));
    assert_eq!((s.app.ws.handshake_timeout, s.app.ws.max_pending_connections), (Duration::from_secs(2), 5));
}

#[test]
fn the_access_recheck_interval_comes_from_the_config_file_and_zero_turns_it_off() {
    let f = temp_file::TempFile::new("access_recheck_interval = \"2m 30s\"\n");
    let s = settings(&["--jwt-secret", SECRET, "--config", &f.arg()]).unwrap();
    assert_eq!(s.app.ws.access_recheck_interval, Duration::from_secs(150));
    let off = settings(&["--jwt-secret", SECRET, "--access-recheck-interval", "0s"]).unwrap();
    assert_eq!(off.app.ws.access_recheck_interval, Duration::ZERO);
    let err =
        parse_from(["labchat", "serve", "--access-recheck-interval", "often"].iter().map(OsString::from).collect())
            .unwrap_err()
            .to_string();
    assert!(err.contains("--access-recheck-interval"), "{err}");
}

#[test]
fn demo_seeds_one_request_and_needs_no_secret() {
    let s = settings(&["--demo"]).unwrap();
    let id = s.demo.unwrap();
    let StoreSettings::Memory { seed } = &s.app.store else { panic!("memory expected") };
    assert_eq!(seed.len(), 1);
    assert_eq!(seed[0].id(), id);
    assert_eq!(seed[0].created_by().map(labchat_domain::UserId::as_str), Some("teacher-demo"));
    assert!(s.app.auth.key.len() >= 16, "a random secret of at least 16 bytes");
}

#[test]
fn every_invalid_setting_is_refused_with_a_message_naming_it() {
    let secret = ["--jwt-secret", SECRET];
    let cases: &[(&[&str], &str)] = &[
        (&[], "no JWT key: set --jwt-secret / --jwt-secret-file (or LABCHAT_JWT_SECRET), or try --demo"),
        (&["--jwt-secret", "short"], "the HS256 secret must be at least 16 bytes"),
        (
            &["--jwt-secret", SECRET, "--jwt-secret-file", "/nonexistent"],
            "set only one of --jwt-secret and --jwt-secret-file",
        ),
        (&["--jwt-secret-file", "/nonexistent/labchat-secret"], "--jwt-secret-file /nonexistent/labchat-secret: "),
        (&["--jwt-alg", "RS256"], "RS256/ES256 need --jwt-public-key-file"),
        (
            &["--jwt-alg", "ES256", "--jwt-public-key-file", "/nonexistent/key.pem"],
            "--jwt-public-key-file /nonexistent/key.pem: ",
        ),
        (&["--history-limit", "0"], "--history-limit: a history limit must be between 1 and 10000, got 0"),
        (&["--max-message-chars", "0"], "--max-message-chars must be at least 1"),
        (&["--max-receipt-ids", "0"], "--max-receipt-ids must be at least 1"),
        (&["--rate-per-second", "0"], "--rate-per-second must be > 0 and --rate-burst at least 1"),
        (&["--rate-burst", "0.5"], "--rate-per-second must be > 0 and --rate-burst at least 1"),
        (&["--max-frame-bytes", "1000"], "--max-frame-bytes must be at least 1024"),
        (&["--outbound-max-frames", "0"], "--outbound-max-frames at least 1"),
        (
            &["--max-frame-bytes", "8192", "--outbound-max-bytes", "4096"],
            "--outbound-max-bytes at least --max-frame-bytes",
        ),
        (&["--ping-interval", "0s"], "--ping-interval must be greater than zero"),
        (&["--handshake-timeout", "0s"], "--handshake-timeout must be greater than zero"),
        (&["--max-pending-connections", "0"], "--max-pending-connections must be at least 1"),
        (&["--listen", "127.0.0.1:7000", "--ops-listen", "127.0.0.1:7000"], "--ops-listen must differ from --listen"),
        (&["--workers", "0"], "--workers must be at least 1"),
        (&["--seed-requests", "/nonexistent/seed.json"], "--seed-requests /nonexistent/seed.json: "),
        (
            &["--demo", "--mongo-uri", "mongodb://db"],
            "--seed-requests and --demo use the in-memory store; drop --mongo-uri",
        ),
        (&["--redis-url", "redis://127.0.0.1:6379/"], "(--redis-url or --redis-cluster) needs --mongo-uri"),
        (&["--redis-cluster", "redis://127.0.0.1:7000/"], "(--redis-url or --redis-cluster) needs --mongo-uri"),
        (
            &["--redis-url", "redis://127.0.0.1:6379/", "--mongo-uri", "mongodb://db", "--node-id", " "],
            "--node-id must not be blank",
        ),
    ];
    for (flags, needle) in cases {
        // Every case but the key checks has a valid secret, so only its own setting is wrong.
        let key_case = flags.iter().any(|f| f.starts_with("--jwt")) || flags.is_empty();
        let all: Vec<&str> =
            if key_case { flags.to_vec() } else { secret.iter().chain(flags.iter()).copied().collect() };
        let err = settings(&all).expect_err(needle).to_string();
        assert!(err.contains(needle), "{flags:?}: {err:?} should contain {needle:?}");
    }
}

#[test]
fn a_bad_seed_file_names_the_entry() {
    let f = temp_file::TempFile::new(r#"[{"id":"xyz","createdBy":"t1"}]"#);
    let err = settings(&["--jwt-secret", SECRET, "--seed-requests", &f.arg()]).unwrap_err().to_string();
    assert!(err.starts_with("--seed-requests ") && err.contains("seed requests [0].id"), "{err}");
}

#[test]
fn the_redis_url_and_node_id_reach_the_backplane_settings() {
    let s = settings(&[
        "--jwt-secret",
        SECRET,
        "--mongo-uri",
        "mongodb://db:27017",
        "--redis-url",
        "redis://cache:6379/",
        "--node-id",
        "node-a",
    ])
    .unwrap();
    let b = s.app.backplane.unwrap();
    assert_eq!((b.redis_url.as_str(), b.node_id.as_str()), ("redis://cache:6379/", "node-a"));
    assert!(matches!(s.app.store, StoreSettings::Mongo(_)), "MongoDB stays the store");
}

#[test]
fn the_node_id_defaults_to_the_host_name_and_the_process_id() {
    let s =
        settings(&["--jwt-secret", SECRET, "--mongo-uri", "mongodb://db", "--redis-url", "redis://cache/"]).unwrap();
    let id = s.app.backplane.unwrap().node_id;
    let pid = format!("-{}", std::process::id());
    assert!(id.ends_with(&pid) && id.len() > pid.len(), "{id:?}");
}

#[test]
fn the_backplane_settings_come_from_the_config_file_and_print_config_masks_the_redis_password() {
    let f = temp_file::TempFile::new(
        "mongo_uri = \"mongodb://db\"\nredis_url = \"redis://:hush-hush@cache:6379/0\"\nnode_id = \"node-b\"\n",
    );
    let s = settings(&["--jwt-secret", SECRET, "--config", &f.arg()]).unwrap();
    let b = s.app.backplane.unwrap();
    assert_eq!((b.redis_url.as_str(), b.node_id.as_str()), ("redis://:hush-hush@cache:6379/0", "node-b"));
    let printed = effective_toml(&args(&["--config", &f.arg()])).unwrap();
    assert!(!printed.contains("hush-hush"), "{printed}");
    assert!(printed.contains("redis_url = \"redis://:********@cache:6379/0\""), "{printed}");
    assert!(printed.contains("node_id = \"node-b\""), "{printed}");
}

#[test]
fn the_check_interval_and_the_outbox_bounds_reach_the_backplane_and_are_checked() {
    let base = ["--jwt-secret", SECRET, "--mongo-uri", "mongodb://db", "--redis-url", "redis://cache/"];
    let b = settings(&base).unwrap().app.backplane.unwrap();
    assert_eq!(b.check_interval, Duration::from_secs(5));
    assert_eq!(b.outbox, labchat_broadcast_redis::OutboxBounds::default());
    let tuned = [
        "--backplane-check-interval",
        "60s",
        "--backplane-outbox-max-entries",
        "7",
        "--backplane-outbox-max-bytes",
        "4096",
        "--backplane-outbox-max-age",
        "2s",
    ];
    let b = settings(&[&base[..], &tuned[..]].concat()).unwrap().app.backplane.unwrap();
    assert_eq!(b.check_interval, Duration::from_secs(60));
    assert_eq!((b.outbox.max_entries, b.outbox.max_bytes, b.outbox.max_age), (7, 4096, Duration::from_secs(2)));
    for (flag, value) in [("--backplane-check-interval", "0s"), ("--backplane-outbox-max-entries", "0")] {
        let err = settings(&[&base[..], &[flag, value][..]].concat()).unwrap_err();
        assert!(err.0.contains(flag), "{err}");
    }
}

#[test]
fn the_join_bound_reaches_the_use_cases_and_its_wait_stays_under_the_store_timeout() {
    let default = settings(&["--jwt-secret", SECRET]).unwrap().app.join_admission;
    assert_eq!(default, labchat_core::JoinAdmission::default());
    let s = settings(&["--jwt-secret", SECRET, "--max-joins-in-flight", "2", "--store-timeout", "2s"]).unwrap();
    assert_eq!(s.app.join_admission.max_in_flight, 2);
    assert_eq!(s.app.join_admission.wait, Duration::from_millis(500), "a quarter of a 2 s store timeout");
    let file = temp_file::TempFile::new("max_joins_in_flight = 7\n");
    let s = settings(&["--jwt-secret", SECRET, "--config", &file.arg()]).unwrap();
    assert_eq!(s.app.join_admission.max_in_flight, 7);
    let e = settings(&["--jwt-secret", SECRET, "--max-joins-in-flight", "0"]).unwrap_err();
    assert!(e.to_string().contains("--max-joins-in-flight must be at least 1"), "{e}");
}
