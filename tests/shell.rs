//! `flotilla shell` against real nodes on loopback: one-shot commands (tables and JSON),
//! `kill` followed by `tree` showing the supervisor's restart, a wrong key refused with a
//! clear message, `@NODE` reaching a peer through the mesh, and an interactive session
//! driven through a pseudo-terminal (`script` allocates it).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const KEY: &str = "shared-cluster-key-for-tests-0123456789";

/// Runs `flotilla shell` with `args`; (exit status, stdout, stderr).
fn run_shell(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(binary())
        .arg("shell")
        .args(args)
        .envs(env.iter().copied())
        .env_remove("FLOTILLA_CLUSTER_KEY")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

fn shell(node: &str, key: &str, args: &[&str]) -> (i32, String, String) {
    let all: Vec<&str> = ["--node", node, "--key", key]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_shell(&all, &[])
}

#[test]
fn shell_commands_kill_and_restart_wrong_key_and_a_peer() {
    let (port, rtmp) = (free_port(), free_port());
    let mut config = shared_config(port, KEY, &[1, 2]);
    config.push_str("stream news { input test://; segment_duration 1; }\n");
    let a = member(1, "a", port, rtmp, &config);
    let _b = member(2, "b", port, rtmp, &config);
    let node = a.http.to_string();

    let (code, out, err) = shell(&node, KEY, &["-c", "tree"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("streams  [supervisor]") && out.contains("news  [stream] running"),
        "{out}"
    );

    // top memory: the stream reports the media it holds (its segment window and GOP),
    // and leads the list once segments are cut; actors that report nothing show `-`.
    let held = poll_until(Duration::from_secs(10), || {
        let (_, out, _) = shell(&node, KEY, &["--json", "-c", "top memory 3"]);
        let reply: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
        let first = reply["body"]["actors"][0].clone();
        (first["path"] == "node/streams/news" && first["memory_bytes"].as_u64()? > 10_000)
            .then_some(first)
    });
    assert!(held.is_some(), "the stream leads top memory");
    let (code, out, _) = shell(&node, KEY, &["-c", "top memory 3"]);
    assert_eq!(code, 0);
    assert!(out.contains("MEMORY") && out.contains("KiB"), "{out}");

    // --json is one parseable object per command.
    let (code, out, _) = shell(&node, KEY, &["--json", "-c", "streams"]);
    assert_eq!(code, 0);
    let reply: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(reply["status"], 200);
    assert_eq!(reply["body"]["streams"][0]["name"], "news");

    // kill → the supervisor restarts the stream, and tree/info show it.
    let (code, out, err) = shell(
        &node,
        KEY,
        &["-c", "kill node/streams/news checking restarts"],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("killed (checking restarts)"), "{out}");
    let restarted = poll_until(Duration::from_secs(10), || {
        let (_, out, _) = shell(&node, KEY, &["-c", "tree node/streams"]);
        out.contains("news  [stream] running  restarts=1")
            .then_some(out)
    });
    assert!(restarted.is_some(), "tree shows the restart");
    let (_, out, _) = shell(&node, KEY, &["-c", "info node/streams/news"]);
    assert!(out.contains("failure injected: checking restarts"), "{out}");
    let (_, out, _) = shell(&node, KEY, &["-c", "top restarts 1"]);
    assert!(
        out.contains("node/streams/news") && out.contains("1 of "),
        "{out}"
    );

    // trace follows the stream actor live while it is killed and restarted.
    let mut tracer = Command::new(binary())
        .args([
            "shell",
            "--node",
            &node,
            "--key",
            KEY,
            "-c",
            "trace node/streams/news 5",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill until the tracer has seen its five events (it may subscribe after the first).
    let finished = poll_until(Duration::from_secs(20), || {
        if let Some(status) = tracer.try_wait().unwrap() {
            return Some(status);
        }
        shell(&node, KEY, &["-c", "kill node/streams/news traced"]);
        None
    });
    if finished.is_none() {
        let _ = tracer.kill();
    }
    let traced = tracer.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&traced.stdout).to_string();
    assert!(traced.status.success(), "{out}");
    for event in [
        "failed    failure injected: traced",
        "status    restarting",
        "started",
    ] {
        assert!(out.contains(event), "{event}: {out}");
    }

    // Mistakes: a bad command exits 1 with the reason; a missing actor says so.
    let (code, out, _) = shell(&node, KEY, &["-c", "frobnicate"]);
    assert_eq!(code, 1);
    assert!(out.contains("unknown command `frobnicate`"), "{out}");
    let (code, out, _) = shell(&node, KEY, &["-c", "info node/nothing"]);
    assert_eq!(code, 1);
    assert!(out.contains("error (404)"), "{out}");

    // Another key is refused at the handshake, and the operator is told why.
    let (code, _, err) = shell(
        &node,
        "another-key-entirely-0123456789abcdef",
        &["-c", "tree"],
    );
    assert_eq!(code, 3);
    assert!(err.contains("holds another cluster key"), "{err}");

    // @NODE: b answers through a, once the mesh knows b.
    let reached = poll_until(Duration::from_secs(15), || {
        let (code, out, _) = shell(&node, KEY, &["-c", "@b nodes"]);
        (code == 0 && out.contains("self: b")).then_some(out)
    });
    assert!(reached.is_some(), "@b reaches b");
    let (code, out, _) = shell(&node, KEY, &["-c", "@nobody tree"]);
    assert_eq!(code, 1);
    assert!(out.contains("no peer called nobody"), "{out}");
}

#[test]
fn an_interactive_session_through_a_pseudo_terminal() {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\ncluster_key {KEY};\nstream news {{ input test://; segment_duration 1; }}\n"
    );
    let health = format!("127.0.0.1:{port}").parse().unwrap();
    let _node = Node::start(&config, health, &[], &[]);
    let home = TempDir::new("shell-home");
    // `script` gives the shell a real pty; keystrokes arrive on it as typed.
    let command = format!("{} shell --node 127.0.0.1:{port} --key {KEY}", binary());
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("HOME", &home.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) is installed");
    let mut stdin = child.stdin.take().unwrap();
    // Typed slowly enough for the editor to read each line on its own.
    for line in [
        "help\n",
        "tree node/streams\n",
        "top restarts 2\n",
        "exit\n",
    ] {
        std::thread::sleep(Duration::from_millis(300));
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let status = wait_with_deadline(&mut child, Duration::from_secs(20)).expect("the shell exits");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("connected to 127.0.0.1"), "{out}");
    assert!(
        out.contains("kill PATH [REASON]"),
        "help lists commands: {out}"
    );
    assert!(out.contains("news  [stream]"), "tree: {out}");
    assert!(out.contains("2 of "), "top: {out}");
    // On a terminal, status words are coloured.
    assert!(out.contains("\x1b[32mrunning"), "colour on a TTY: {out:?}");
    // History was saved for the next session.
    let history = std::fs::read_to_string(home.0.join(".flotilla_shell_history")).unwrap();
    assert!(history.contains("tree node/streams"), "{history}");
}

fn login(node: &str, user: &str, password: &str, args: &[&str]) -> (i32, String, String) {
    let all: Vec<&str> = ["--node", node, "--user", user]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_shell(&all, &[("FLOTILLA_SHELL_PASSWORD", password)])
}

#[test]
fn logging_in_with_edit_auth_or_view_auth_instead_of_the_key() {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\ncluster_key {KEY};\nedit_auth admin admin-pass;\n\
         view_auth viewer view-pass;\nstream news {{ input test://; segment_duration 1; }}\n"
    );
    let health = format!("127.0.0.1:{port}").parse().unwrap();
    let _node = Node::start(&config, health, &[], &[]);
    let node = format!("127.0.0.1:{port}");

    // edit_auth: everything, kill included.
    let (code, out, err) = login(&node, "admin", "admin-pass", &["-c", "tree node/streams"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("news  [stream] running"), "{out}");
    let (code, out, err) = login(
        &node,
        "admin",
        "admin-pass",
        &["-c", "kill node/streams/news"],
    );
    assert_eq!(code, 0, "{out} {err}");

    // view_auth: reading only; a kill is refused and says how to get the right.
    let (code, out, _) = login(&node, "viewer", "view-pass", &["-c", "streams"]);
    assert_eq!(code, 0);
    assert!(out.contains("news"), "{out}");
    let (code, out, err) = login(
        &node,
        "viewer",
        "view-pass",
        &["-c", "kill node/streams/news"],
    );
    assert_eq!(code, 1);
    assert!(
        format!("{out}{err}").contains("log in with edit_auth or the cluster key"),
        "{out} {err}"
    );

    // A wrong password or user is refused before any command, with exit status 3.
    for (user, password) in [("admin", "guess"), ("nobody", "admin-pass")] {
        let (code, _, err) = login(&node, user, password, &["-c", "tree"]);
        assert_eq!(code, 3, "{err}");
        assert!(
            err.contains("refused the login: wrong user or password"),
            "{err}"
        );
    }
}
