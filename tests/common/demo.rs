//! `lienthong demo` as a child process (the real binary), for end-to-end tests. Killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Demo {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Every log line so far (stderr), collected by a thread.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    /// Starts the demo in `cwd` (its database and CA file go there) with `scenario` (TOML text)
    /// and waits until it prints its address.
    pub fn start(cwd: &Path, scenario: &str) -> Demo {
        let scenario_path = cwd.join("scenario.toml");
        std::fs::write(&scenario_path, scenario).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args(["demo", "--listen", "127.0.0.1:0", "--scenario"])
            .arg(&scenario_path)
            .arg("--config")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.toml"))
            .current_dir(cwd)
            .env("LIENTHONG_LOG", "info")
            .env("LIENTHONG_API_TOKEN", "test-token")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start demo");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(i) = line.find("open http://") {
                    let rest = &line[i + "open ".len()..];
                    let _ = tx.send(rest.split('/').take(3).collect::<Vec<_>>().join("/"));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(200));
                let said = log.lock().unwrap().join("\n");
                // Its fixed 127.10/127.20 simulator ports: a second demo on this machine
                // fails to bind them.
                panic!("the demo printed no address ({e}, exit {status:?}):\n{said}");
            }
        };
        Demo { child, base, log }
    }

    pub fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "10", &format!("{}{path}", self.base)])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        serde_json::from_str(&self.get(path)?).ok()
    }

    /// Polls `f` every 500 ms until it returns Some or `limit` passes.
    pub fn wait_for<T>(&self, limit: Duration, mut f: impl FnMut(&Demo) -> Option<T>) -> Option<T> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(v) = f(self) {
                return Some(v);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        None
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "demo did not exit");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
