//! A TCP link between a daemon and the PostgreSQL server that a test can cut.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A TCP link between the daemon and the PostgreSQL server that the test can cut, as a network
/// failure or a server restart would: cutting closes every open connection and refuses new ones
/// (accepts and closes them at once) until the link is restored. Only the daemon behind the
/// link sees the outage; the server and other tests' databases are untouched.
pub struct DatabaseLink {
    address: SocketAddr,
    up: Arc<AtomicBool>,
    /// Cancelled to close the connections open now; replaced on every cut.
    open: Arc<Mutex<CancellationToken>>,
}

impl DatabaseLink {
    /// Listens on a free port and forwards to 127.0.0.1:5432.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(CancellationToken::new()));
        let (accepting, connections) = (up.clone(), open.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accepting.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let cut = connections.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        Self { address, up, open }
    }

    /// `database` on the server, through this link.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.address)
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        open.cancel();
        *open = CancellationToken::new();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
