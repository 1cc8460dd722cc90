//! Embeds the git revision (`git rev-parse --short HEAD`) as LIENTHONG_REVISION for
//! `lienthong_build_info{revision}`; "unknown" without git. A LIENTHONG_REVISION set in the
//! environment (e.g. a build from a source tarball) wins.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=LIENTHONG_REVISION");
    if let Ok(r) = std::env::var("LIENTHONG_REVISION") {
        println!("cargo:rustc-env=LIENTHONG_REVISION={r}");
        return;
    }
    let revision = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it points to (a commit)
    // and packed-refs (a gc). Paths from git, so worktrees work too.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ]
    .into_iter()
    .flatten()
    {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=LIENTHONG_REVISION={revision}");
}
