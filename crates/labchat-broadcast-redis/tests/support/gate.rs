//! A gate in front of the test redis-server: open, it forwards every connection; closed, it cuts
//! every connection through it and refuses new ones. One node behind a gate can be kept away
//! from Redis while another node reaches it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A gate on a free loopback port; see the module's documentation. Stops on drop.
pub struct Gate {
    addr: SocketAddr,
    open: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Gate {
    /// An open gate to the redis-server on `port`.
    pub async fn start(port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(watch::Sender::new(true));
        let state = Arc::clone(&open);
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) cuts every connection.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                if *state.borrow() {
                    connections.spawn(forward(client, port, state.subscribe()));
                }
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, open, task }
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

async fn forward(mut client: TcpStream, port: u16, mut open: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", port)).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = open.wait_for(|open| !*open) => {}
    }
}
