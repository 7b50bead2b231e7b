//! The `flotilla` binary as an operator meets it: check-config, run, the HTTP API,
//! access control, bad input and shutdown. Real processes on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

const CHECK_DEADLINE: Duration = Duration::from_secs(20);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn check_config_prints_the_canonical_form() {
    let dir = TempDir::new("check");
    let path = dir.write(
        "seed.conf",
        "cluster_key abcd;\npeer streamer:8081 {\n  public streamer.public;\n}\nstream cam03 {\n  url tshttp://example.com/cam03;\n  cluster_ingest capture_at=streamer:8081;\n  dvr /storage 3d;\n}\n",
    );
    let (status, stdout, stderr) =
        run_to_end(&["check-config", path.to_str().unwrap()], CHECK_DEADLINE);
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("public_payload_url streamer.public;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("input tshttp://example.com/cam03;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cluster_ingest capture_at=streamer:8081;"),
        "{stdout}"
    );
    assert!(
        stderr.contains("directive `dvr` is parsed but not active yet"),
        "{stderr}"
    );
    // The printed form is itself a valid config that prints the same.
    let again = dir.write("again.conf", &stdout);
    let (status, second, _) =
        run_to_end(&["check-config", again.to_str().unwrap()], CHECK_DEADLINE);
    assert!(status.success());
    assert_eq!(second, stdout);
}

#[test]
fn check_config_rejects_a_broken_file_with_its_position() {
    let dir = TempDir::new("broken");
    let path = dir.write("broken.conf", "http 8080;\nstream cam {\n  inptu tshttp://h/cam;\n}\nbalancer b { mode fastest; server h; }\n");
    let (status, stdout, stderr) =
        run_to_end(&["check-config", path.to_str().unwrap()], CHECK_DEADLINE);
    assert_eq!(status.code(), Some(1));
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("broken.conf:3:3: error: unknown directive `inptu`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `input`?"), "{stderr}");
    assert!(
        stderr.contains("broken.conf:5:19: error: unknown balancer mode `fastest`"),
        "{stderr}"
    );
}

#[test]
fn version_names_the_build() {
    let (status, stdout, _) = run_to_end(&["--version"], CHECK_DEADLINE);
    assert!(status.success());
    let line = stdout.trim();
    assert!(
        line.starts_with(&format!("flotilla {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    // The commit this checkout is at, a date, the profile and the target triple.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(head) = head {
        assert!(line.contains(&head), "{line} is not at {head}");
    }
    assert!(line.contains("-linux-"), "{line}");
}

#[test]
fn check_config_of_a_missing_file_is_one_line() {
    let (status, _, stderr) = run_to_end(
        &["check-config", "/nonexistent/flotilla.conf"],
        CHECK_DEADLINE,
    );
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot read config file /nonexistent/flotilla.conf"),
        "{stderr}"
    );
}

#[test]
fn run_serves_health_and_a_protected_redacted_config() {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\ncluster_key 0123456789abcdef0123;\nedit_auth admin pw1;\nview_auth viewer pw2;\nstream cam01 {{ input tshttp://127.0.0.1:9/cam01; }}\n"
    );
    let _node = Node::start(&config, addr(port), &["--hostname", "node-a"], &[]);

    let (status, _, body) = http_get(addr(port), "/flotilla/api/health", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"hostname\":\"node-a\""), "{body}");

    let (status, head, _) = http_get(addr(port), "/streamer/api/v3/config", &[]).unwrap();
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{head}"
    );

    let viewer = basic("viewer", "pw2");
    let (status, _, body) = http_get(
        addr(port),
        "/streamer/api/v3/config",
        &[("Authorization", &viewer)],
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"cluster_key\":\"***\""), "{body}");
    assert!(body.contains("tshttp://127.0.0.1:9/cam01"), "{body}");

    let admin = basic("admin", "pw1");
    let (_, _, body) = http_get(
        addr(port),
        "/streamer/api/v3/config",
        &[("Authorization", &admin)],
    )
    .unwrap();
    assert!(body.contains("0123456789abcdef0123"), "{body}");
}

#[test]
fn hostname_comes_from_the_environment_when_no_flag() {
    let port = free_port();
    let config = format!("hostname from-file;\nhttp 127.0.0.1:{port};\n");
    let _node = Node::start(
        &config,
        addr(port),
        &[],
        &[("FLOTILLA_HOSTNAME", "from-env")],
    );
    let (_, _, body) = http_get(addr(port), "/flotilla/api/health", &[]).unwrap();
    assert!(body.contains("\"hostname\":\"from-env\""), "{body}");
}

#[test]
fn media_only_listener_and_network_allow_list() {
    let (api_port, media_port) = (free_port(), free_port());
    let config = format!(
        "http 127.0.0.1:{api_port};\nhttp 127.0.0.1:{media_port} {{ api false; }}\napi_allowed_from 10/8;\n"
    );
    let _node = Node::start(&config, addr(api_port), &[], &[]);
    let (status, _, _) = http_get(addr(media_port), "/flotilla/api/health", &[]).unwrap();
    assert_eq!(status, 404, "api false hides the API");
    let (status, _, body) = http_get(addr(api_port), "/streamer/api/v3/config", &[]).unwrap();
    assert_eq!(status, 403, "127.0.0.1 is outside 10/8");
    assert!(body.contains("api_allowed_from"), "{body}");
}

#[test]
fn a_taken_port_is_a_one_line_local_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("taken");
    let path = dir.write("flotilla.conf", &format!("http 127.0.0.1:{port};\n"));
    let (status, _, stderr) = run_to_end(&["run", "-c", path.to_str().unwrap()], CHECK_DEADLINE);
    assert_eq!(status.code(), Some(3), "{stderr}");
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(
        error_lines[0].contains(&format!(
            "local error: cannot listen on 127.0.0.1:{port} for http"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_broken_config_does_not_start_the_node() {
    let dir = TempDir::new("badrun");
    let path = dir.write("flotilla.conf", "http 127.0.0.1:1;\nloglevel chatty;\n");
    let (status, _, stderr) = run_to_end(&["run", "-c", path.to_str().unwrap()], CHECK_DEADLINE);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("flotilla.conf:2:10: error: unknown log level `chatty`"),
        "{stderr}"
    );
}

#[test]
fn sigterm_and_sigint_stop_the_node_cleanly() {
    for signal in ["TERM", "INT"] {
        let port = free_port();
        let mut node = Node::start(&format!("http 127.0.0.1:{port};\n"), addr(port), &[], &[]);
        node.signal(signal);
        let status = wait_with_deadline(&mut node.child, Duration::from_secs(15))
            .expect("node did not stop");
        assert!(status.success(), "SIG{signal} gave {status}");
        assert!(
            http_get(addr(port), "/flotilla/api/health", &[]).is_err(),
            "port closed after SIG{signal}"
        );
    }
}

#[test]
fn keygen_prints_a_strong_key() {
    let (status, stdout, _) = run_to_end(&["keygen"], CHECK_DEADLINE);
    assert!(status.success());
    let key = stdout.trim();
    assert_eq!(key.len(), 64);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn the_readme_cluster_example_is_a_valid_config() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## A two-node cluster")
        .nth(1)
        .expect("README has the cluster section");
    let example = section
        .split("```")
        .nth(1)
        .expect("the section holds a code block");
    let dir = TempDir::new("readme");
    let path = dir.write("cluster.conf", example);
    for node in ["node-a", "node-b"] {
        let (status, _, stderr) = run_to_end(
            &["check-config", path.to_str().unwrap(), "--hostname", node],
            CHECK_DEADLINE,
        );
        assert!(
            status.success(),
            "README example rejected for {node}:\n{stderr}"
        );
    }
}

#[test]
fn sighup_reloads_the_config_while_a_viewer_plays_on() {
    use std::io::{Read, Write};
    let port = free_port();
    let config = format!("http 127.0.0.1:{port};\nstream clip {{ input test://; }}\n");
    let node = Node::start(&config, addr(port), &[], &[]);
    // An HTTP-MPEG-TS viewer, reading continuously.
    let mut viewer = std::net::TcpStream::connect(addr(port)).unwrap();
    viewer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    viewer
        .write_all(b"GET /clip/mpegts HTTP/1.1\r\nHost: node\r\n\r\n")
        .unwrap();
    let mut read_some = |at_least: usize| {
        let mut total = 0;
        let mut buffer = [0u8; 16 * 1024];
        while total < at_least {
            let n = viewer
                .read(&mut buffer)
                .expect("the viewer keeps receiving");
            assert!(n > 0, "the stream ended");
            total += n;
        }
    };
    read_some(64 * 1024);
    node.signal("HUP");
    node.signal("HUP");
    // Two more seconds of a ~400 kbit/s stream arrive after the signals.
    read_some(100 * 1024);
    let mut node = node;
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "the node is running"
    );
    let (status, _, _) = http_get(addr(port), "/flotilla/api/health", &[]).unwrap();
    assert_eq!(status, 200);
    let logged = poll_until(Duration::from_secs(5), || {
        node.log_tail().contains("config reloaded").then_some(())
    });
    assert!(logged.is_some(), "{}", node.log_tail());
}
