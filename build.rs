//! Links the `zccache` binary statically on linux-gnu: it starts on every compile hit and
//! every `zccache run`, and a static binary skips the dynamic loader (~0.4 ms of a ~1.2 ms
//! start). Only the binary gets these flags (tests, build scripts and proc-macros stay
//! dynamic), and only where the C compiler finds glibc's static archives; any other host, or
//! a linux-gnu host without them, builds the usual dynamic binary.
//!
//! std asks the linker for `-lc -lm -lgcc_s ...` in dynamic mode. A directory searched only
//! by this binary's link answers each name with a linker script naming the static archive
//! (`-L` applies to every `-l`, wherever it stands), and `-no-pie -static` makes the result a
//! self-contained executable at a fixed address: a static-pie binary relocates itself at
//! every start (22,000 relocations, half of a C hit's page faults: 152 against 76). The
//! image's own address is then the same each run (stack, heap and mappings stay
//! randomised); the code is Rust, and the daemon serves only its own user.
//! `ZCCACHE_LINK_DYNAMIC=1` opts out.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Library names std links, and the static archives that stand in for each.
const LIBRARIES: [(&str, &[&str]); 7] = [
    ("c", &["libc.a", "libgcc.a", "libgcc_eh.a"]),
    ("m", &["libm.a"]),
    ("gcc_s", &["libgcc_eh.a", "libgcc.a"]),
    ("util", &["libutil.a"]),
    ("rt", &["librt.a"]),
    ("pthread", &["libpthread.a"]),
    ("dl", &["libdl.a"]),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ZCCACHE_LINK_DYNAMIC");
    println!("cargo::rustc-check-cfg=cfg(zccache_early_entry)");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let linux_gnu = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    // ZCCACHE_LINK_DYNAMIC=1 builds the usual dynamic binary (bench/startup.sh compares them).
    if !linux_gnu || var("ZCCACHE_LINK_DYNAMIC") == "1" {
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(|d| PathBuf::from(d).join("static-libs"))
    else {
        return;
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    if write_scripts(&out, &cc).is_some() {
        println!("cargo:rustc-link-arg-bin=zccache=-L{}", out.display());
        println!("cargo:rustc-link-arg-bin=zccache=-no-pie");
        println!("cargo:rustc-link-arg-bin=zccache=-static");
        // The early client (crate `zccache-early`) speaks x86_64 system calls.
        if var("CARGO_CFG_TARGET_ARCH") == "x86_64" {
            println!("cargo:rustc-link-arg-bin=zccache=-Wl,-e,zccache_entry");
            println!("cargo:rustc-cfg=zccache_early_entry");
        }
    } else {
        println!("cargo:warning=glibc's static archives not found: zccache is linked dynamically");
    }
}

/// Writes `lib<name>.so` linker scripts into `dir`; `None` when an archive is missing.
fn write_scripts(dir: &Path, cc: &str) -> Option<()> {
    std::fs::create_dir_all(dir).ok()?;
    for (name, archives) in LIBRARIES {
        let paths = archives
            .iter()
            .map(|archive| archive_path(cc, archive))
            .collect::<Option<Vec<_>>>()?;
        let script = format!("GROUP({})\n", paths.join(" "));
        std::fs::write(dir.join(format!("lib{name}.so")), script).ok()?;
    }
    Some(())
}

/// Where the C compiler finds `archive` (it echoes the bare name when it finds nothing).
fn archive_path(cc: &str, archive: &str) -> Option<String> {
    let output = Command::new(cc)
        .arg(format!("-print-file-name={archive}"))
        .output()
        .ok()?;
    let path = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && Path::new(&path).is_absolute()).then_some(path)
}
