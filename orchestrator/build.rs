// Sets `cfg(postgres_available)` when this machine has PostgreSQL's server binaries (Debian's
// `postgresql` package, which .ci/run installs) and can run them (root, through the `postgres`
// user, or an ordinary user), so the PostgreSQL store's tests show as ignored, with the reason,
// instead of passing without running.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_available)");
    println!("cargo::rerun-if-changed=/usr/lib/postgresql");
    let has_initdb = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten().any(|e| {
                e.path().join("bin/initdb").is_file() && e.path().join("bin/postgres").is_file()
            })
        })
        .unwrap_or(false);
    if has_initdb {
        println!("cargo::rustc-cfg=postgres_available");
    }
}
