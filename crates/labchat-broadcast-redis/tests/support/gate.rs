//! A gate in front of the test redis-server: open, it forwards every connection; closed, it cuts
//! every connection through it and refuses new ones. One node behind a gate can be kept away
//! from Redis while another node reaches it. Slowed, it holds each chunk a client writes for a
//! while before passing it on: a node's commands then wait in turn, as behind a busy link.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A gate on a free loopback port; see the module's documentation. Stops on drop.
pub struct Gate {
    addr: SocketAddr,
    open: Arc<watch::Sender<bool>>,
    /// Milliseconds each chunk from a client is held (0: none).
    delay: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Gate {
    /// An open gate to the redis-server on `port`.
    pub async fn start(port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(watch::Sender::new(true));
        let delay = Arc::new(AtomicU64::new(0));
        let (state, held) = (Arc::clone(&open), Arc::clone(&delay));
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) cuts every connection.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                if *state.borrow() {
                    connections.spawn(forward(client, port, state.subscribe(), Arc::clone(&held)));
                }
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, open, delay, task }
    }

    /// From now on, holds each chunk a client writes for `delay` before passing it on
    /// (`Duration::ZERO`: not at all).
    pub fn slow(&self, delay: Duration) {
        self.delay.store(u64::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }

    /// The URL a node uses to reach Redis through the gate.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Cuts every connection through the gate and refuses new ones.
    pub fn close(&self) {
        self.open.send_replace(false);
    }

    /// Lets connections through again.
    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(client: TcpStream, port: u16, mut open: watch::Receiver<bool>, delay: Arc<AtomicU64>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", port)).await else { return };
    let ((mut from_client, mut to_client), (mut from_server, mut to_server)) =
        (client.into_split(), server.into_split());
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
            let held = delay.load(Ordering::SeqCst);
            if held > 0 {
                tokio::time::sleep(Duration::from_millis(held)).await;
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        _ = tokio::io::copy(&mut from_server, &mut to_client) => {}
        _ = open.wait_for(|open| !*open) => {}
    }
}
