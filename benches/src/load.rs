//! The load loop: one task per connection, each with its own statistics.
//!
//! Closed loop (default): a connection sends its next request as soon as the
//! previous body is read, so offered load adapts to the server; good for
//! peak throughput. Open loop (`rate`): requests are due on a fixed schedule
//! and latency is measured from when a request was *due*, not when it was
//! sent, so a stalled server shows up as latency instead of being hidden by
//! the client politely waiting (coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::Link;
use crate::stats::{ErrorKind, Stats};
use crate::target::Target;

/// Pause after a failed connect in closed loop, so a dead target costs a
/// bounded number of attempts instead of a busy loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: Target,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_requests: Option<u64>,
    /// Total requests per second across all connections (open loop).
    pub rate: Option<f64>,
    /// Per request (connect, send, whole body) before it counts as a timeout.
    pub timeout: Duration,
}

/// Merged statistics and the length of the measured window.
pub struct Measurement {
    pub stats: Stats,
    pub elapsed: Duration,
}

struct Shared {
    target: Target,
    timeout: Duration,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    /// Gap between two requests on one connection in open loop.
    interval: Option<Duration>,
    connections: usize,
    max_requests: Option<u64>,
    issued: AtomicU64,
}

impl Shared {
    /// Claims one of the `max_requests` measured requests, if capped.
    fn take_ticket(&self) -> bool {
        match self.max_requests {
            Some(max) => self.issued.fetch_add(1, Ordering::Relaxed) < max,
            None => true,
        }
    }
}

/// Runs the load on the current tokio runtime. Returns once every
/// connection's loop has ended and its last request has completed.
pub async fn run(config: &LoadConfig) -> anyhow::Result<Measurement> {
    anyhow::ensure!(config.connections > 0, "need at least one connection");
    if let Some(rate) = config.rate {
        anyhow::ensure!(rate.is_finite() && rate > 0.0, "rate must be positive");
    }
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let shared = Arc::new(Shared {
        target: config.target.clone(),
        timeout: config.timeout,
        start,
        measure_from,
        end: measure_from + config.duration,
        interval: config.rate.map(|rate| Duration::from_secs_f64(config.connections as f64 / rate)),
        connections: config.connections,
        max_requests: config.max_requests,
        issued: AtomicU64::new(0),
    });
    let tasks: Vec<_> =
        (0..config.connections).map(|id| tokio::spawn(worker(id, Arc::clone(&shared)))).collect();
    let mut stats = Stats::new();
    let mut last_done = None;
    for task in tasks {
        let (worker_stats, worker_last) = task.await?;
        stats.merge(&worker_stats)?;
        last_done = last_done.max(worker_last);
    }
    // The window closes at the last measured response, not when the slowest
    // task gives up on a timed-out request, which would understate req/s.
    let closed_at = last_done.unwrap_or_else(|| Instant::now().min(shared.end));
    Ok(Measurement { stats, elapsed: closed_at.saturating_duration_since(measure_from) })
}

/// Builds the runtime the load runs on: one thread keeps the generator on
/// the single CPU it is pinned to; more threads are for faster targets.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

struct Pacer {
    next: Instant,
    interval: Duration,
}

impl Pacer {
    /// Staggers connections across one interval so an open-loop run sends a
    /// steady stream instead of `connections`-sized bursts.
    fn new(shared: &Shared, interval: Duration, id: usize) -> Self {
        let offset = interval.mul_f64(id as f64 / shared.connections as f64);
        Self { next: shared.start + offset, interval }
    }

    /// Requests that fell due before `end` but were never sent because the
    /// server was too slow to let the connection keep up.
    fn due_before(&self, end: Instant) -> u64 {
        let behind = end.saturating_duration_since(self.next).as_nanos();
        let interval = self.interval.as_nanos().max(1);
        u64::try_from(behind.div_ceil(interval)).unwrap_or(u64::MAX)
    }
}

/// Waits until the next request is due; `None` once the run is over.
async fn next_due(pacer: &mut Option<Pacer>, shared: &Shared) -> Option<Instant> {
    let now = Instant::now();
    if now >= shared.end {
        return None;
    }
    let Some(pacer) = pacer else {
        return Some(now);
    };
    let due = pacer.next;
    if due >= shared.end {
        return None;
    }
    pacer.next += pacer.interval;
    tokio::time::sleep_until(due.into()).await;
    Some(due)
}

async fn worker(id: usize, shared: Arc<Shared>) -> (Stats, Option<Instant>) {
    let mut stats = Stats::new();
    let mut last_done = None;
    let mut link = Link::default();
    let mut pacer = shared.interval.map(|i| Pacer::new(&shared, i, id));
    while let Some(due) = next_due(&mut pacer, &shared).await {
        let measured = due >= shared.measure_from;
        if measured && !shared.take_ticket() {
            return (stats, last_done);
        }
        let conn = match link.ready(&shared.target, shared.timeout).await {
            Ok((conn, replaced)) => {
                if replaced && measured {
                    stats.reconnects += 1;
                }
                conn
            }
            Err(kind) => {
                if measured {
                    stats.record_error(kind);
                }
                if pacer.is_none() {
                    let pause = shared.end.saturating_duration_since(Instant::now());
                    tokio::time::sleep(pause.min(CONNECT_BACKOFF)).await;
                }
                continue;
            }
        };
        let started = if pacer.is_some() { due } else { Instant::now() };
        let outcome = tokio::time::timeout(shared.timeout, conn.exchange(shared.target.request()))
            .await
            .unwrap_or(Err(ErrorKind::Timeout));
        match outcome {
            Ok(done) if measured => {
                stats.record_response(done.status, done.finished - started, done.body_bytes);
                last_done = Some(done.finished);
            }
            Ok(_) => {}
            Err(kind) => {
                link.discard();
                if measured {
                    stats.record_error(kind);
                }
            }
        }
    }
    if let Some(pacer) = &pacer {
        stats.unsent += pacer.due_before(shared.end);
    }
    (stats, last_done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend;
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    struct TestServer {
        url: String,
        served: Arc<AtomicU64>,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl TestServer {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/population/people/38001085718", listener.local_addr().unwrap());
            let served = Arc::new(AtomicU64::new(0));
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(backend::serve(listener, Arc::clone(&served), async {
                let _ = stopped.await;
            }));
            Self { url, served, stop: Some(stop), task }
        }

        async fn stop(mut self) -> u64 {
            let _ = self.stop.take().unwrap().send(());
            self.task.await.unwrap();
            self.served.load(Ordering::Relaxed)
        }
    }

    fn config(url: &str, h2: bool, duration_ms: u64) -> LoadConfig {
        LoadConfig {
            target: Target::new(url, "GET", &[], h2).unwrap(),
            connections: 4,
            duration: Duration::from_millis(duration_ms),
            warmup: Duration::ZERO,
            max_requests: None,
            rate: None,
            timeout: Duration::from_secs(5),
        }
    }

    async fn assert_counts_match(h2: bool) {
        let server = TestServer::start().await;
        let m = run(&config(&server.url, h2, 300)).await.unwrap();
        let served = server.stop().await;
        assert!(m.stats.requests() > 0);
        assert_eq!(m.stats.requests(), served, "client and server disagree");
        assert_eq!(m.stats.status.s2xx, m.stats.requests());
        assert_eq!(m.stats.errors.total(), 0);
        assert_eq!(m.stats.body_bytes, served * backend::population_record().len() as u64);
        assert!(m.elapsed >= Duration::from_millis(250) && m.elapsed < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn closed_loop_http1_counts_every_request() {
        assert_counts_match(false).await;
    }

    #[tokio::test]
    async fn closed_loop_h2_counts_every_request() {
        assert_counts_match(true).await;
    }

    #[tokio::test]
    async fn max_requests_is_a_hard_cap() {
        let server = TestServer::start().await;
        let mut cfg = config(&server.url, false, 10_000);
        cfg.max_requests = Some(25);
        let started = Instant::now();
        let m = run(&cfg).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "cap did not end the run");
        assert_eq!(m.stats.requests(), 25);
        assert_eq!(server.stop().await, 25);
    }

    #[tokio::test]
    async fn open_loop_follows_the_rate() {
        let server = TestServer::start().await;
        let mut cfg = config(&server.url, false, 300);
        cfg.rate = Some(200.0);
        cfg.connections = 2;
        let m = run(&cfg).await.unwrap();
        assert_eq!(m.stats.requests(), server.stop().await);
        // 200 req/s for 0.3 s schedules exactly 60; a loaded machine may miss a few.
        assert!((40..=60).contains(&m.stats.requests()), "{} requests", m.stats.requests());
    }

    #[tokio::test]
    async fn warmup_requests_are_not_recorded() {
        let server = TestServer::start().await;
        let mut cfg = config(&server.url, false, 150);
        cfg.warmup = Duration::from_millis(150);
        let m = run(&cfg).await.unwrap();
        let served = server.stop().await;
        assert!(m.stats.requests() > 0);
        assert!(served > m.stats.requests(), "warmup traffic was recorded");
    }

    #[tokio::test]
    async fn status_classes_follow_the_server() {
        let server = TestServer::start().await;
        let mut cfg = config(&server.url, false, 100);
        cfg.target = Target::new(&server.url, "POST", &[], false).unwrap();
        let m = run(&cfg).await.unwrap();
        assert_eq!(m.stats.requests(), server.stop().await);
        assert_eq!(m.stats.status.s4xx, m.stats.requests());
    }

    /// A minimal HTTP/1.1 server whose every response takes `delay`; without
    /// `keep_alive` it closes each connection after one response, as a server
    /// with a keep-alive limit of 1 would.
    async fn start_tiny_server(served: Arc<AtomicU64>, keep_alive: bool, delay: Duration) -> String {
        use hyper::server::conn::http1;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let served = Arc::clone(&served);
                let service = hyper::service::service_fn(move |_req| {
                    served.fetch_add(1, Ordering::Relaxed);
                    async move {
                        tokio::time::sleep(delay).await;
                        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"ok"));
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    }
                });
                let conn = http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::spawn(conn);
            }
        });
        url
    }

    #[tokio::test]
    async fn closed_keep_alive_means_reconnect_not_error() {
        let served = Arc::new(AtomicU64::new(0));
        let url = start_tiny_server(Arc::clone(&served), false, Duration::ZERO).await;
        let mut cfg = config(&url, false, 200);
        cfg.connections = 2;
        let m = run(&cfg).await.unwrap();
        assert!(m.stats.requests() > 2);
        assert_eq!(m.stats.requests(), served.load(Ordering::Relaxed));
        assert_eq!(m.stats.errors.total(), 0, "{:?}", m.stats.errors);
        // Each connection's first request needs no reconnect; every later one does.
        assert_eq!(m.stats.reconnects, m.stats.requests() - 2);
    }

    #[tokio::test]
    async fn open_loop_latency_includes_time_spent_waiting_to_send() {
        // One connection, a request due every 10 ms, and a server taking
        // 50 ms: a closed-loop view would report ~50 ms. Measured from when
        // each request was due, the backlog shows as growing latency.
        let served = Arc::new(AtomicU64::new(0));
        let url = start_tiny_server(Arc::clone(&served), true, Duration::from_millis(50)).await;
        let mut cfg = config(&url, false, 300);
        cfg.connections = 1;
        cfg.rate = Some(100.0);
        let m = run(&cfg).await.unwrap();
        assert_eq!(m.stats.requests(), served.load(Ordering::Relaxed));
        assert!((4..=7).contains(&m.stats.requests()), "{} requests", m.stats.requests());
        assert!(m.stats.latency_us.max() >= 150_000, "max {} us", m.stats.latency_us.max());
        // 30 requests fell due; the ones never sent are reported, not lost.
        assert_eq!(m.stats.requests() + m.stats.unsent, 30);
    }

    #[tokio::test]
    async fn refused_connections_are_counted_as_connect_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let mut cfg = config(&url, false, 200);
        cfg.connections = 1;
        let m = run(&cfg).await.unwrap();
        assert_eq!(m.stats.requests(), 0);
        assert!(m.stats.errors.connect >= 2, "{:?}", m.stats.errors);
        assert_eq!(m.stats.errors.connect, m.stats.errors.total());
    }
}
