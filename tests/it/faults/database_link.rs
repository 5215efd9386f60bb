//! A TCP link between a daemon and the PostgreSQL server that a test can cut or partition.

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
    /// Whether a cut leaves the server's side of each connection open, as a network partition
    /// does: the server keeps the session (and its locks) until it notices.
    partition: Arc<AtomicBool>,
    /// The server sides a partition left open.
    stranded: Arc<Mutex<Vec<TcpStream>>>,
}

impl DatabaseLink {
    /// Listens on a free port and forwards to 127.0.0.1:5432.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(CancellationToken::new()));
        let partition = Arc::new(AtomicBool::new(false));
        let stranded = Arc::new(Mutex::new(Vec::new()));
        let (accepting, connections) = (up.clone(), open.clone());
        let (partitioned, strand) = (partition.clone(), stranded.clone());
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
                let (partitioned, strand) = (partitioned.clone(), strand.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                        () = cut.cancelled() => {}
                    }
                    if partitioned.load(Ordering::SeqCst) {
                        strand.lock().unwrap().push(server);
                    }
                });
            }
        });
        Self {
            address,
            up,
            open,
            partition,
            stranded,
        }
    }

    /// `database` on the server, through this link.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.address)
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.partition.store(false, Ordering::SeqCst);
        self.cut_now();
    }

    /// Like [`cut`](Self::cut), but the server's sides stay open: its sessions live on.
    pub fn partition(&self) {
        self.partition.store(true, Ordering::SeqCst);
        self.cut_now();
    }

    fn cut_now(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        open.cancel();
        *open = CancellationToken::new();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// How many server sides of connections partitions left open.
    pub fn stranded(&self) -> usize {
        self.stranded.lock().unwrap().len()
    }
}
