//! The `labchat` binary: parses configuration, wires the server, runs it until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use labchat::app::{self, Settings, StoreSettings};
use labchat::cli::{Alg, Command, JwtArgs, LogFormat, ServeArgs, TokenArgs};
use labchat::token;
use labchat_domain::{HistoryLimit, ObjectIdBytes, Request, RequestId, Role, UserId};
use labchat_store_mongo::MongoSettings;
use labchat_transport_ws::{AuthSettings, JwtAlgorithm, WsConfig, protocol::DecodeLimits};
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let cli = match labchat::config::parse_from(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(labchat::config::ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "labchat: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Token(args) => mint(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "labchat: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn init_logs(format: LogFormat, filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn read_secret(secret: Option<&str>, file: Option<&std::path::Path>) -> Result<Option<Vec<u8>>, BoxError> {
    match (secret, file) {
        (Some(_), Some(_)) => Err("set only one of --jwt-secret and --jwt-secret-file".into()),
        (Some(s), None) => Ok(Some(s.as_bytes().to_vec())),
        (None, Some(path)) => {
            let s = std::fs::read_to_string(path).map_err(|e| format!("--jwt-secret-file {}: {e}", path.display()))?;
            Ok(Some(s.trim_end_matches(['\n', '\r']).as_bytes().to_vec()))
        }
        (None, None) => Ok(None),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], BoxError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(b)
}

fn auth_settings(jwt: &JwtArgs, demo: bool) -> Result<AuthSettings, BoxError> {
    let algorithm = match jwt.jwt_alg {
        Alg::Hs256 => JwtAlgorithm::Hs256,
        Alg::Rs256 => JwtAlgorithm::Rs256,
        Alg::Es256 => JwtAlgorithm::Es256,
    };
    let key = if algorithm == JwtAlgorithm::Hs256 {
        match read_secret(jwt.jwt_secret.as_deref(), jwt.jwt_secret_file.as_deref())? {
            Some(k) if k.len() < 16 => return Err("the HS256 secret must be at least 16 bytes".into()),
            Some(k) => k,
            None if demo => {
                let hex: String = random_bytes::<24>()?.iter().map(|b| format!("{b:02x}")).collect();
                hex.into_bytes()
            }
            None => {
                return Err(
                    "no JWT key: set --jwt-secret / --jwt-secret-file (or LABCHAT_JWT_SECRET), or try --demo".into()
                );
            }
        }
    } else {
        let path = jwt.jwt_public_key_file.as_ref().ok_or("RS256/ES256 need --jwt-public-key-file")?;
        std::fs::read(path).map_err(|e| format!("--jwt-public-key-file {}: {e}", path.display()))?
    };
    Ok(AuthSettings {
        algorithm,
        key,
        issuer: jwt.jwt_issuer.clone(),
        audience: jwt.jwt_audience.clone(),
        role_claim: jwt.jwt_role_claim.clone(),
    })
}

fn serve(args: ServeArgs) -> Result<(), BoxError> {
    if args.print_config {
        let mut out = std::io::stdout().lock();
        write!(out, "{}", labchat::config::effective_toml(&args)?)?;
        return Ok(());
    }
    init_logs(args.log_format, args.log.as_deref());
    let auth = auth_settings(&args.jwt, args.demo)?;
    let history_limit = HistoryLimit::new(args.history_limit).map_err(|e| format!("--history-limit: {e}"))?;
    if args.max_message_chars == 0 {
        return Err("--max-message-chars must be at least 1".into());
    }
    if args.max_receipt_ids == 0 {
        return Err("--max-receipt-ids must be at least 1".into());
    }
    if !(args.rate_per_second > 0.0 && args.rate_burst >= 1.0) {
        return Err("--rate-per-second must be > 0 and --rate-burst at least 1".into());
    }
    if args.max_frame_bytes < 1024 || args.outbound_max_frames == 0 || args.outbound_max_bytes < args.max_frame_bytes {
        return Err("--max-frame-bytes must be at least 1024, --outbound-max-frames at least 1, and --outbound-max-bytes at least --max-frame-bytes".into());
    }
    if args.ping_interval.is_zero() {
        return Err("--ping-interval must be greater than zero".into());
    }
    let ws = WsConfig {
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
        ..WsConfig::default()
    };
    let mut seed = match &args.seed_requests {
        Some(path) => {
            let json = std::fs::read_to_string(path).map_err(|e| format!("--seed-requests {}: {e}", path.display()))?;
            app::parse_seed(&json)?
        }
        None => Vec::new(),
    };
    let demo = if args.demo {
        let id = RequestId::from_object_id(ObjectIdBytes::from_bytes(random_bytes::<12>()?));
        seed.push(Request::new(id, UserId::parse("teacher-demo")?));
        Some(id)
    } else {
        None
    };
    let store = match &args.mongo_uri {
        Some(uri) => {
            if !seed.is_empty() {
                return Err("--seed-requests and --demo use the in-memory store; drop --mongo-uri".into());
            }
            StoreSettings::Mongo(MongoSettings {
                uri: uri.clone(),
                database: args.mongo_db.clone(),
                requests_collection: args.mongo_requests_collection.clone(),
                creator_field: args.mongo_creator_field.clone(),
                op_timeout: args.store_timeout,
                batch_inserts: args.mongo_batch_inserts,
            })
        }
        None => StoreSettings::Memory { seed },
    };
    let settings = Settings { auth: auth.clone(), history_limit, ws, store };

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let app = app::build(settings).await?;
        let listener = TcpListener::bind(args.listen).await.map_err(|e| format!("listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "labchat listening");
        if let Some(id) = demo {
            // The instructions are a convenience: a closed stdout must not stop the server.
            if let Err(e) = print_demo(&auth, id, addr) {
                tracing::warn!(error = %e, "could not print the demo instructions");
            }
        }
        labchat_transport_ws::run(listener, app.server, shutdown_signal()).await?;
        tracing::info!("labchat stopped");
        Ok(())
    })
}

fn print_demo(auth: &AuthSettings, id: RequestId, addr: std::net::SocketAddr) -> Result<(), BoxError> {
    let ttl = Duration::from_secs(12 * 3600);
    let teacher = token::mint(&auth.key, "teacher-demo", Role::Teacher, &auth.role_claim, ttl)?;
    let lab = token::mint(&auth.key, "lab-demo", Role::Lab, &auth.role_claim, ttl)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nlabchat demo is running on ws://{addr}/ws (in-memory store: nothing persists)\n\n\
         request id:    {id}\n\
         TEACHER token: {teacher}\n\
         LAB token:     {lab}\n\n\
         Connect with any websocket client, e.g. websocat:\n  \
         websocat -H 'Authorization: Bearer {teacher}' ws://{addr}/ws\n\
         then send:\n  \
         {{\"event\":\"joinRoom\",\"data\":{{\"requestId\":\"{id}\"}},\"id\":1}}\n  \
         {{\"event\":\"message\",\"data\":{{\"requestId\":\"{id}\",\"message\":\"hello\"}},\"id\":2}}\n\
         In a browser: open http://{addr}/ and paste a token and the request id.\n\
         From a browser console:\n  \
         ws = new WebSocket('ws://{addr}/ws', ['labchat.v1', 'bearer.{lab}']); ws.onmessage = e => console.log(e.data)\n"
    )?;
    out.flush()?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

fn mint(args: &TokenArgs) -> Result<(), BoxError> {
    let role = Role::parse(&args.role)?;
    let secret = read_secret(args.jwt_secret.as_deref(), args.jwt_secret_file.as_deref())?
        .ok_or("no secret: set --jwt-secret / --jwt-secret-file (or LABCHAT_JWT_SECRET)")?;
    UserId::parse(args.sub.clone())?;
    let token = token::mint(&secret, &args.sub, role, &args.jwt_role_claim, args.ttl)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")?;
    Ok(())
}
