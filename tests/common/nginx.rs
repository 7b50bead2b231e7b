//! nginx as the peer servers operators pull from: nginx-rtmp (Debian's libnginx-mod-rtmp)
//! for `rtmp://` inputs, and a plain web server for HLS files written by an encoder.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TempDir, poll_until};

/// Where Debian's libnginx-mod-rtmp puts the module.
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// A running nginx, stopped on drop.
pub struct Nginx {
    child: Child,
    pub dir: TempDir,
}

impl Nginx {
    /// Starts nginx in the foreground with `rtmp` (an `rtmp { … }` block, empty for
    /// none) and `http` (an `http { … }` block's servers) and waits until `ready`
    /// accepts TCP connections.
    pub fn start(rtmp: &str, http: &str, ready: SocketAddr) -> Nginx {
        let dir = TempDir::new("nginx");
        let root = dir.0.display();
        let module = if rtmp.is_empty() {
            String::new()
        } else {
            format!("load_module {RTMP_MODULE};\n")
        };
        let config = format!(
            "{module}daemon off;\nmaster_process off;\nerror_log {root}/error.log warn;\npid {root}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n{rtmp}\n\
             http {{ access_log off; client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;\n\
             fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;\n\
             types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}\n{http}\n}}\n"
        );
        let path = dir.write("nginx.conf", &config);
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed by scripts/test.sh");
        let nginx = Nginx { child, dir };
        poll_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(ready).ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "nginx did not listen on {ready}: {}",
                std::fs::read_to_string(nginx.dir.0.join("error.log")).unwrap_or_default()
            )
        });
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
