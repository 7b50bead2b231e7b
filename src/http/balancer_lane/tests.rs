use std::sync::{Arc, RwLock};

use flotilla_cluster::mesh::view::{ClusterView, PeerLoad, PeerUpdate};
use flotilla_otp::rt::Runtime;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::balancer::{Balancers, NodeBalancerIo};
use crate::config::identity::NodeIdentity;
use crate::config::load_str;
use crate::media::directory::Directory;
use flotilla_cluster::balancer::BalancerBoard;

fn ours(path: &str) -> bool {
    path.starts_with("/lb/")
}

fn simple(request: &str) -> SimpleHead<'_> {
    match classify(request.as_bytes(), ours) {
        Head::Simple(head) => head,
        other => panic!("{request:?} gave {other:?}"),
    }
}

#[test]
fn a_balancer_get_is_the_lanes_with_its_query_and_forwarded_hops() {
    let request = "GET /lb/news/index.m3u8?token=a%20b HTTP/1.1\r\nHost: x\r\n\
                   X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 198.51.100.7, 10.0.0.2\r\n\r\n";
    let head = simple(request);
    assert_eq!(head.len, request.len());
    assert_eq!(head.path, "/lb/news/index.m3u8");
    assert_eq!(head.query, Some("token=a%20b"));
    assert_eq!(
        head.forwarded.as_slice(),
        ["10.0.0.1", "198.51.100.7, 10.0.0.2"]
    );
    assert!(!head.head_only);
    assert_eq!(head.persistence, Persistence::KeepAlive);
    assert!(simple("HEAD /lb/s/x HTTP/1.1\r\n\r\n").head_only);
    assert_eq!(simple("GET /lb/s/x HTTP/1.1\r\n\r\n").query, None);
}

#[test]
fn the_connection_header_and_version_decide_what_follows_the_answer() {
    let persistence = |request: &str| simple(request).persistence;
    assert_eq!(
        persistence("GET /lb/s HTTP/1.1\r\nConnection: Close\r\n\r\n"),
        Persistence::Close
    );
    assert_eq!(
        persistence("GET /lb/s HTTP/1.0\r\n\r\n"),
        Persistence::Close
    );
    assert_eq!(
        persistence("GET /lb/s HTTP/1.0\r\nConnection: TE, keep-alive\r\n\r\n"),
        Persistence::KeepAliveAnnounced
    );
    assert_eq!(
        persistence("GET /lb/s HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"),
        Persistence::KeepAlive
    );
    assert_eq!(
        persistence("GET /lb/s HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        Persistence::KeepAlive
    );
}

#[test]
fn everything_the_lane_does_not_fully_understand_goes_to_hyper() {
    for request in [
        "GET /flotilla/api/health HTTP/1.1\r\n\r\n",
        "POST /lb/s/whip HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "GET /lb/s HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "GET /lb/s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /lb/s HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET /lb/s HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        "GET http://x/lb/s HTTP/1.1\r\n\r\n",
        "GET /lb/s#frag HTTP/1.1\r\n\r\n",
        "GET /lb/s\"x HTTP/1.1\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "get /lb/s HTTP/1.1\r\n\r\n",
        "GET /lb/s HTTP/1.1\r\nBad Header\r\n\r\n",
        "\u{1}\u{2}\u{3}",
    ] {
        assert_eq!(
            classify(request.as_bytes(), ours),
            Head::Other,
            "{request:?}"
        );
    }
    // Too many headers for the lane: hyper decides with its own limits.
    let many: String = (0..=MAX_LANE_HEADERS)
        .map(|i| format!("X-{i}: y\r\n"))
        .collect();
    let request = format!("GET /lb/s HTTP/1.1\r\n{many}\r\n");
    assert_eq!(classify(request.as_bytes(), ours), Head::Other);
}

#[test]
fn a_partial_head_waits_unless_its_request_line_already_says_it_is_not_ours() {
    assert_eq!(
        classify(b"GET /lb/s HTTP/1.1\r\nHost:", ours),
        Head::Partial
    );
    assert_eq!(classify(b"GE", ours), Head::Partial);
    assert_eq!(classify(b"", ours), Head::Partial);
    assert_eq!(classify(b"GET /api/x HTTP/1.1\r\nHo", ours), Head::Other);
    assert_eq!(classify(b"POST /lb/s HTTP/1.1\r\nHo", ours), Head::Other);
}

#[test]
fn answers_are_written_as_hyper_would_write_them() {
    let mut out = Vec::new();
    let redirect = Routed::Redirect(302, "http://b:80/s/index.m3u8?t=1".into());
    encode(
        &mut out,
        &redirect,
        false,
        Persistence::KeepAlive,
        "Sat, 21 Nov 2026 10:00:00 GMT",
        b"",
    );
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "HTTP/1.1 302 Found\r\nlocation: http://b:80/s/index.m3u8?t=1\r\ncontent-length: 0\r\n\
         date: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\n"
    );
    out.clear();
    encode(
        &mut out,
        &Routed::Redirect(307, "http://b/s/whip".into()),
        false,
        Persistence::Close,
        "D",
        b"",
    );
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 307 Temporary Redirect\r\n"),
        "{text}"
    );
    assert!(text.contains("connection: close\r\n"), "{text}");
    out.clear();
    encode(
        &mut out,
        &Routed::Unavailable(NoServer::AllDown),
        false,
        Persistence::KeepAliveAnnounced,
        "D",
        b"",
    );
    let text = String::from_utf8(out.clone()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("retry-after: {RETRY_AFTER_SECONDS}\r\n")));
    assert!(head.contains("connection: keep-alive\r\n"));
    assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("every server is down")
    );
    // HEAD: the same head, no body.
    out.clear();
    encode(
        &mut out,
        &Routed::Unavailable(NoServer::AllFull),
        true,
        Persistence::KeepAlive,
        "D",
        b"",
    );
    assert!(
        String::from_utf8(out.clone())
            .unwrap()
            .ends_with("\r\n\r\n")
    );
    // A location that could split the response is left out, as hyper would refuse it.
    out.clear();
    encode(
        &mut out,
        &Routed::Redirect(302, "http://b/\r\nx: y".into()),
        false,
        Persistence::KeepAlive,
        "D",
        b"",
    );
    assert!(!String::from_utf8(out).unwrap().contains("location"));
}

#[test]
fn the_date_is_formatted_once_per_second() {
    let mut date = DateCache::default();
    assert_eq!(date.at(1_795_255_200_000), "Sat, 21 Nov 2026 10:00:00 GMT");
    assert_eq!(date.at(1_795_255_200_999), "Sat, 21 Nov 2026 10:00:00 GMT");
    assert_eq!(date.at(1_795_255_201_000), "Sat, 21 Nov 2026 10:00:01 GMT");
}

proptest! {
    #[test]
    fn any_bytes_classify_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = classify(&bytes, ours);
    }

    #[test]
    fn a_lane_request_cut_anywhere_is_partial_until_whole(cut in 0usize..80) {
        let request = "GET /lb/news/index.m3u8?t=1 HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
        let cut = cut.min(request.len() - 1);
        prop_assert_eq!(classify(&request.as_bytes()[..cut], ours), Head::Partial);
        let head = simple(request);
        prop_assert_eq!(head.len, request.len());
    }
}

/// A node with two balancers: `lb` over peer b only (every request redirected to b, or
/// refused while b is down) and `here` over this node only (served here).
fn fast_path(runtime: &Runtime, b_up: bool) -> FastPath {
    let text = "http 8080;
        balancer lb { mode clients; server b.lan:8080; }
        balancer here { server 127.0.0.1:8080; }";
    let config = load_str("t", text).unwrap().config;
    let identity = NodeIdentity::resolve(&config, Some("a"), None);
    let view: Arc<RwLock<ClusterView>> = Arc::default();
    view.write()
        .unwrap()
        .add_peer("b.lan:8080", "", 1_000, 3_000);
    if b_up {
        view.write().unwrap().apply(
            "b.lan:8080",
            PeerUpdate {
                id: "b.lan:8080".into(),
                hostname: "b".into(),
                public_url: String::new(),
                rtmp_url: String::new(),
                incarnation: 1,
                started_ms: 1,
                version: 1,
                load: PeerLoad::default(),
                uptime_ms: 0,
                returns_ms: Vec::new(),
                your_restarts_ms: Vec::new(),
                full: true,
                upserts: vec![],
                removals: vec![],
                called_by_peer: false,
            },
            runtime.wall_clock_ms(),
        );
    }
    let directory = Directory::default();
    let stats = crate::stats::start(runtime, directory.clone(), "a".into(), 0);
    let io = NodeBalancerIo::new(&config, &identity, Some(view), stats, directory);
    let balancers = Balancers::new(
        &config,
        Arc::new(io),
        BalancerBoard::default(),
        None,
        runtime.clone(),
    );
    FastPath::new(balancers, Vec::new(), crate::http::cors::Cors::Any)
        .expect("a balancer is configured")
}

fn remote() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 40_000))
}

fn runtime() -> Runtime {
    Runtime::deterministic(3, 1_795_255_200_000)
}

/// Runs the lane on one end of a pipe while `client` talks on the other.
async fn with_lane<F, Fut>(fast: FastPath, shutdown: watch::Receiver<bool>, client: F) -> LaneEnd
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut near, far) = tokio::io::duplex(256 * 1024);
    let mut shutdown = shutdown;
    let limits = HttpLimits::default();
    let (end, ()) = tokio::join!(
        async {
            let end = serve_lane(&mut near, &fast, remote(), &limits, &mut shutdown, None).await;
            drop(near);
            end
        },
        client(far)
    );
    end
}

async fn read_all(far: &mut DuplexStream) -> String {
    let mut text = Vec::new();
    far.read_to_end(&mut text).await.unwrap();
    String::from_utf8(text).unwrap()
}

#[tokio::test(start_paused = true)]
async fn pipelined_redirects_are_answered_in_order_then_hyper_gets_the_rest() {
    let runtime = runtime();
    let (_stop, shutdown) = watch::channel(false);
    let rest = "GET /flotilla/api/health HTTP/1.1\r\nHost: a\r\n\r\n";
    let end = with_lane(fast_path(&runtime, true), shutdown, |mut far| async move {
        let both = "GET /lb/s1/index.m3u8?t=1 HTTP/1.1\r\nHost: a\r\n\
                    Origin: https://site.example\r\n\r\n\
                    HEAD /lb/s2/index.m3u8 HTTP/1.1\r\nHost: a\r\n\r\n";
        far.write_all(format!("{both}{rest}").as_bytes())
            .await
            .unwrap();
        let answers = read_all(&mut far).await;
        let (first, second) = answers.split_once("\r\n\r\n").unwrap();
        assert!(first.starts_with("HTTP/1.1 302 Found\r\n"), "{answers}");
        assert!(first.contains("location: http://b.lan:8080/s1/index.m3u8?t=1\r\n"));
        // A page on another origin may follow the redirect.
        assert!(
            first.contains("access-control-allow-origin: *\r\n"),
            "{first}"
        );
        assert!(
            first.contains("date: Sat, 21 Nov 2026 10:00:00 GMT"),
            "{first}"
        );
        assert!(second.starts_with("HTTP/1.1 302 Found\r\n"), "{answers}");
        assert!(second.contains("location: http://b.lan:8080/s2/index.m3u8\r\n"));
    })
    .await;
    match end {
        LaneEnd::HandOver { prefix, decided } => {
            assert_eq!(&prefix[..], rest.as_bytes());
            assert!(decided.is_none());
        }
        LaneEnd::Closed => panic!("hyper should have got the API request"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_the_balancer_serves_here_goes_to_hyper_with_its_decision() {
    let runtime = runtime();
    let (_stop, shutdown) = watch::channel(false);
    let request = "GET /here/s1/index.m3u8 HTTP/1.1\r\nHost: a\r\n\r\n";
    let end = with_lane(fast_path(&runtime, true), shutdown, |mut far| async move {
        far.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(
            read_all(&mut far).await,
            "",
            "nothing is answered by the lane"
        );
    })
    .await;
    match end {
        LaneEnd::HandOver { prefix, decided } => {
            assert_eq!(&prefix[..], request.as_bytes());
            assert_eq!(
                decided.map(|Decided(path)| path).as_deref(),
                Some("/s1/index.m3u8")
            );
        }
        LaneEnd::Closed => panic!("hyper should have got the request"),
    }
}

#[tokio::test(start_paused = true)]
async fn no_server_is_a_503_and_connection_close_ends_the_connection() {
    let runtime = runtime();
    let (_stop, shutdown) = watch::channel(false);
    let end = with_lane(fast_path(&runtime, false), shutdown, |mut far| async move {
        far.write_all(b"GET /lb/s1/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_all(&mut far).await;
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{answer}"
        );
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(answer.contains("retry-after: "), "{answer}");
    })
    .await;
    assert!(matches!(end, LaneEnd::Closed));
}

#[tokio::test(start_paused = true)]
async fn a_head_not_finished_within_the_header_deadline_closes_the_connection() {
    let runtime = runtime();
    let (_stop, shutdown) = watch::channel(false);
    let end = with_lane(fast_path(&runtime, true), shutdown, |mut far| async move {
        far.write_all(b"GET /lb/s1/x HTTP/1.1\r\nHost: a\r\n\r\nGET /lb/s1/x HTTP/1.1\r\nHo")
            .await
            .unwrap();
        // Trickle: a byte every 2 s never finishes the second head; the lane must hang
        // up at the 10 s deadline, well before the trickle ends.
        let mut trickled = 0;
        for _ in 0..20 {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if far.write_all(b"o").await.is_err() {
                break;
            }
            trickled += 1;
        }
        assert!((4..=5).contains(&trickled), "cut after {trickled} bytes");
        let answer = read_all(&mut far).await;
        assert_eq!(answer.matches("HTTP/1.1 302").count(), 1, "{answer}");
    })
    .await;
    assert!(matches!(end, LaneEnd::Closed));
}

#[tokio::test(start_paused = true)]
async fn each_head_gets_the_whole_deadline_from_when_the_lane_waits_for_it() {
    let runtime = runtime();
    let (_stop, shutdown) = watch::channel(false);
    let request = b"GET /lb/s1/x HTTP/1.1\r\nHost: a\r\n\r\n";
    let started = runtime.now();
    let end = with_lane(fast_path(&runtime, true), shutdown, |mut far| async move {
        // Answered at 0 s, 8 s and 17 s: the third head was waited for from 8 s, so the
        // 10 s deadline of the connection's first head must not cut it.
        for at_s in [0, 8, 17] {
            tokio::time::sleep_until(started + std::time::Duration::from_secs(at_s)).await;
            far.write_all(request).await.unwrap();
        }
        // (The fixture's servers go stale meanwhile: the later answers are 503s.)
        let answers = read_all(&mut far).await;
        assert_eq!(answers.matches("HTTP/1.1 ").count(), 3, "{answers}");
        // Idle after the last answer: closed one deadline later, not sooner.
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(27));
    })
    .await;
    assert!(matches!(end, LaneEnd::Closed));
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_an_idle_connection() {
    let runtime = runtime();
    let (stop, shutdown) = watch::channel(false);
    let end = with_lane(fast_path(&runtime, true), shutdown, |mut far| async move {
        far.write_all(b"GET /lb/s1/x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        stop.send(true).unwrap();
        let answer = read_all(&mut far).await;
        assert_eq!(answer.matches("HTTP/1.1 302").count(), 1, "{answer}");
    })
    .await;
    assert!(matches!(end, LaneEnd::Closed));
}

#[tokio::test(start_paused = true)]
async fn an_oversized_head_goes_to_hyper_which_refuses_it() {
    let runtime = runtime();
    let (_stop, shutdown) = watch::channel(false);
    let limit = HttpLimits::default().max_header_bytes;
    let end = with_lane(fast_path(&runtime, true), shutdown, |mut far| async move {
        let huge = format!("GET /lb/s1/x HTTP/1.1\r\nX-Huge: {}", "a".repeat(limit));
        far.write_all(huge.as_bytes()).await.unwrap();
    })
    .await;
    match end {
        LaneEnd::HandOver { prefix, decided } => {
            assert!(prefix.len() >= limit);
            assert!(decided.is_none());
        }
        LaneEnd::Closed => panic!("hyper answers an oversized head"),
    }
}

#[test]
fn the_target_byte_table_is_pchar_slash_and_question_mark() {
    for byte in 0..=255u8 {
        let defined = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte);
        assert_eq!(plain_target_byte(byte), defined, "byte {byte:#04x}");
    }
}
