//! The processes the tests start besides `labchat`: redis-servers (one per test, killed when its
//! handle drops), and the waits and ports they need.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long a process may take to start and answer (a loaded machine builds nothing here, but
/// three processes and MongoDB share two cores).
pub const START_WAIT: Duration = Duration::from_secs(30);

/// A free port of 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `wait`.
///
/// # Panics
///
/// When `wait` passes first, naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, wait: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {wait:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `redis-server` (or `REDIS_SERVER`) with these arguments, in the foreground
/// (`--daemonize no`, `--loglevel warning`), its output discarded, killed when dropped.
///
/// # Panics
///
/// When it cannot be run: install it with `scripts/redis-test-server.sh start`.
pub fn spawn_redis_server<I, S>(args: I) -> Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    Command::new(&program)
        .args(args)
        .args(["--daemonize", "no", "--loglevel", "warning"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}; install it with `scripts/redis-test-server.sh start`"))
}

/// A redis-server of one test, on a port of its own, with no persistence.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` (or `REDIS_SERVER`) on a free port and waits until it answers PING.
    ///
    /// # Panics
    ///
    /// When it cannot be started: install it with `scripts/redis-test-server.sh start`.
    pub async fn start() -> Self {
        let mut server = Self { port: free_port(), child: None };
        server.launch().await;
        server
    }

    async fn launch(&mut self) {
        let port_arg = self.port.to_string();
        let child =
            spawn_redis_server(["--bind", "127.0.0.1", "--port", &port_arg, "--save", "", "--appendonly", "no"]);
        self.child = Some(child);
        let port = self.port;
        wait_for("redis-server answering PING", START_WAIT, || async move {
            (Self::raw(port, "PING\r\n").await.as_deref() == Some("+PONG")).then_some(())
        })
        .await;
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(START_WAIT, child.wait()).await;
        }
    }

    /// Starts it again on the same port (after [`RedisServer::kill`]).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.launch().await;
    }

    /// `CLIENT KILL TYPE normal`: cuts every connection that is neither a subscriber's nor a
    /// replica's (the nodes' publishers and presence). Returns how many were cut.
    pub async fn kill_normal_clients(&self) -> Option<u64> {
        let reply = Self::raw(self.port, "CLIENT KILL TYPE normal\r\n").await?;
        reply.strip_prefix(':')?.parse().ok()
    }

    /// `CLIENT KILL TYPE pubsub`: cuts every subscriber's connection. Returns how many were cut,
    /// or `None` when the server did not answer.
    pub async fn kill_pubsub_clients(&self) -> Option<u64> {
        let reply = Self::raw(self.port, "CLIENT KILL TYPE pubsub\r\n").await?;
        reply.strip_prefix(':')?.parse().ok()
    }

    /// `CLIENT PAUSE <ms>`: the server answers no client's command for that long. Returns
    /// whether it said OK.
    pub async fn pause(&self, ms: u64) -> bool {
        Self::raw(self.port, &format!("CLIENT PAUSE {ms}\r\n")).await.as_deref() == Some("+OK")
    }

    /// Sends one inline command and returns the first line of the reply.
    async fn raw(port: u16, command: &str) -> Option<String> {
        let exchange = async {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream.write_all(command.as_bytes()).await.ok()?;
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).await.ok()?;
            Some(line.trim_end().to_owned())
        };
        tokio::time::timeout(Duration::from_secs(2), exchange).await.ok()?
    }
}
