//! The `labchat` binary: parses configuration, wires the server, runs it until SIGINT, or until
//! the drain that SIGTERM starts is over.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use labchat::app;
use labchat::cli::{Command, LogFormat, ServeArgs, TokenArgs};
use labchat::config::ServeSettings;
use labchat::token;
use labchat_domain::{RequestId, Role, UserId};
use labchat_transport_ws::{AuthSettings, Lifecycle};
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

fn serve(args: ServeArgs) -> Result<(), BoxError> {
    if args.print_config {
        let mut out = std::io::stdout().lock();
        write!(out, "{}", labchat::config::effective_toml(&args)?)?;
        return Ok(());
    }
    let settings = ServeSettings::try_from(args)?;
    init_logs(settings.log_format, settings.log.as_deref());
    let ws = &settings.app.ws;
    let listeners = if settings.ops_listen.is_some() { 2 } else { 1 };
    app::raise_open_file_limit(open_files_wanted(ws.max_connections, listeners, ws.max_pending_connections));

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = settings.workers {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let auth = settings.app.auth.clone();
        let app = app::build(settings.app).await?;
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|e| format!("listen on {addr}: {e}"))
        };
        let listener = bind(settings.listen).await?;
        let addr = listener.local_addr()?;
        let ops = match settings.ops_listen {
            Some(ops_addr) => {
                let ops = bind(ops_addr).await?;
                tracing::info!(addr = %ops.local_addr()?, "ops listening: /healthz, /readyz, /metrics");
                Some(ops)
            }
            None => None,
        };
        let stop = stop_signal(app.server.lifecycle());
        tracing::info!(%addr, "labchat listening");
        if let Some(id) = settings.demo {
            // The instructions are a convenience: a closed stdout must not stop the server.
            if let Err(e) = print_demo(&auth, id, addr) {
                tracing::warn!(error = %e, "could not print the demo instructions");
            }
        }
        let served = labchat_transport_ws::run_with_ops(listener, ops, Arc::clone(&app.server), stop).await;
        if let Some(backplane) = &app.backplane {
            backplane.shutdown();
        }
        served?;
        tracing::info!("labchat stopped");
        Ok(())
    })
}

/// The open-file limit the settings need: a descriptor per open connection and per pending one
/// of each listener, and 64 more for the store, logs and the like.
fn open_files_wanted(max_connections: usize, listeners: usize, max_pending_connections: usize) -> u64 {
    // Saturating: huge settings ask for the most there is rather than wrap or panic.
    let wanted = max_connections.saturating_add(listeners.saturating_mul(max_pending_connections)).saturating_add(64);
    u64::try_from(wanted).unwrap_or(u64::MAX)
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
         In a browser, open these two pages (signed in already; the token is in the URL\n\
         fragment, which the browser never sends to the server) and chat between them:\n  \
         teacher: http://{addr}/#token={teacher}&requestId={id}\n  \
         lab:     http://{addr}/#token={lab}&requestId={id}\n\
         Or open http://{addr}/ and paste a token and the request id.\n\
         From a browser console:\n  \
         ws = new WebSocket('ws://{addr}/ws', ['labchat.v1', 'bearer.{lab}']); ws.onmessage = e => console.log(e.data)\n"
    )?;
    out.flush()?;
    Ok(())
}

/// A future that completes when the server must stop at once: on SIGINT, or on a second SIGTERM.
/// The first SIGTERM asks for a drain (see docs/deployment.md, "Drain and deploy"), which stops
/// the server by itself when it is over. The handlers are installed now, before the future runs:
/// a SIGTERM right after the node says it listens already drains.
fn stop_signal(lifecycle: Lifecycle) -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| tracing::error!(error = %e, "cannot listen for SIGTERM"))
        .ok();
    #[cfg(unix)]
    let term = async move {
        let Some(mut term) = term else { return std::future::pending::<()>().await };
        while term.recv().await.is_some() {
            if lifecycle.drain() {
                tracing::info!("SIGTERM received: draining");
            } else {
                tracing::info!("SIGTERM received again: stopping at once");
                return;
            }
        }
        std::future::pending::<()>().await;
    };
    #[cfg(not(unix))]
    let term = async move {
        let _ = lifecycle;
        std::future::pending::<()>().await
    };
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        tokio::pin!(term);
        tokio::select! {
            r = ctrl_c => match r {
                Ok(()) => tracing::info!("SIGINT received: stopping"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGINT");
                    term.as_mut().await;
                }
            },
            () = term.as_mut() => {}
        }
    }
}

fn mint(args: &TokenArgs) -> Result<(), BoxError> {
    let role = Role::parse(&args.role)?;
    let secret = labchat::config::read_secret(args.jwt_secret.as_deref(), args.jwt_secret_file.as_deref())?
        .ok_or("no secret: set --jwt-secret / --jwt-secret-file (or LABCHAT_JWT_SECRET)")?;
    UserId::parse(args.sub.clone())?;
    let token = token::mint(&secret, &args.sub, role, &args.jwt_role_claim, args.ttl)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::open_files_wanted;

    #[test]
    fn the_open_files_wanted_count_every_connection_and_a_margin() {
        assert_eq!(open_files_wanted(20_000, 1, 1024), 21_088);
        assert_eq!(open_files_wanted(10, 2, 5), 84);
    }

    #[test]
    fn huge_limits_want_the_most_open_files_without_overflowing() {
        assert_eq!(open_files_wanted(usize::MAX, 2, usize::MAX), u64::MAX);
        assert_eq!(open_files_wanted(1, 2, usize::MAX / 2 + 1), u64::MAX);
        assert_eq!(open_files_wanted(usize::MAX - 10, 1, 0), u64::MAX);
    }
}
