#![allow(dead_code)] // each user (tests, the store bench) needs a different subset
//! A private PostgreSQL cluster for one test: `initdb` in a temporary directory owned by
//! `nobody` (PostgreSQL refuses to run as root), listening on 127.0.0.1 and a free port, its
//! Unix socket inside the directory, password (SCRAM) authentication. Stopped with
//! `pg_ctl stop -m immediate` on drop.
//!
//! Without PostgreSQL installed, [`Pg::start`] returns None (the test skips with a message)
//! outside CI and panics under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const USER: &str = "lienthong";
/// The superuser's password: tests grep logs and answers for it.
pub const PASSWORD: &str = "pg-test-secret-Zk4q9";

pub struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Server options beyond the defaults (TLS files, HBA file), kept for restarts.
    extra: String,
}

/// `/usr/lib/postgresql/<newest>/bin`, if installed.
pub fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

use super::free_port;

impl Pg {
    /// A fresh cluster, running. None = PostgreSQL missing and not in CI.
    pub fn start() -> Option<Pg> {
        Pg::start_with(None)
    }

    /// A fresh cluster that accepts only TLS over TCP (`hostssl` in its HBA file), serving
    /// the PEM certificate and key given.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Option<Pg> {
        Pg::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Option<Pg> {
        let Some(bin) = bin_dir() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb) and CI=true"
                );
            }
            eprintln!("SKIPPED: PostgreSQL not installed (/usr/lib/postgresql/*/bin/initdb)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("lienthong-pg")
            .tempdir()
            .unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, PASSWORD).unwrap();
        run(Command::new("chown")
            .arg("-R")
            .arg("nobody")
            .arg(dir.path()));
        let data = dir.path().join("data");
        run(Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pw.display())));
        let mut extra = String::new();
        if let Some((cert, key)) = tls {
            let (crt, k, hba) = (
                dir.path().join("server.crt"),
                dir.path().join("server.key"),
                dir.path().join("hba.conf"),
            );
            std::fs::write(&crt, cert).unwrap();
            std::fs::write(&k, key).unwrap();
            std::fs::write(
                &hba,
                "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .unwrap();
            // PostgreSQL refuses a key file others can read.
            run(Command::new("chown")
                .arg("nobody")
                .arg(&crt)
                .arg(&k)
                .arg(&hba));
            run(Command::new("chmod").arg("600").arg(&k));
            extra = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c hba_file={}",
                crt.display(),
                k.display(),
                hba.display()
            );
        }
        let pg = Pg {
            dir,
            bin,
            port: free_port(),
            extra,
        };
        pg.pg_ctl_start();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server (waits until it accepts connections).
    pub fn pg_ctl_start(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off \
             -c max_connections=50{}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        run(Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "30", "-o", &opts, "start"]));
    }

    /// `pg_ctl stop -m MODE` (`fast`, `immediate`).
    pub fn pg_ctl_stop(&self, mode: &str) {
        let _ = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "30", "-m", mode, "stop"])
            .output();
    }

    /// A database URL without the password (it goes in a password file or `PGPASSWORD`).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (one per test scenario).
    pub fn create_db(&self, name: &str) {
        run(Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                name,
            ])
            .env("PGPASSWORD", PASSWORD));
    }

    /// The server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.pg_ctl_stop("immediate");
    }
}
