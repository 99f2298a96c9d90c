//! The packages, installed as an operator would: `scripts/package` builds them (from this test
//! build's binaries, payloads uncompressed), `dpkg -i` installs them, `dpkg -r` and `dpkg -P`
//! remove them. Needs root (as CI runs), dpkg-deb and rpmbuild (`scripts/test` installs rpm).

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(path: &str) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

/// Installs `deb`, checks what an operator relies on, removes it and checks nothing is left.
fn install_and_remove(deb: &str, package: &str, binary: &str, config: &str) {
    let unit = format!("/usr/lib/systemd/system/{package}.service");
    let enabled = format!("/etc/systemd/system/multi-user.target.wants/{package}.service");
    run("dpkg", &["-i", deb]);
    assert!(Path::new(&unit).is_file(), "{unit} is installed");
    assert_eq!(std::fs::read_link(&enabled).unwrap(), Path::new(&unit), "the unit is enabled");
    assert_eq!(mode(config), 0o600, "{config} holds secrets once configured");
    assert_eq!(mode(&format!("/var/lib/{package}")), 0o700);
    let version = run(&format!("/usr/bin/{binary}"), &["--version"]);
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("{binary} {}", env!("CARGO_PKG_VERSION")));

    run("dpkg", &["-r", package]);
    assert!(!Path::new(&unit).exists() && std::fs::symlink_metadata(&enabled).is_err(), "no unit left behind");
    assert!(!Path::new(&format!("/usr/bin/{binary}")).exists());
    assert!(Path::new(config).exists(), "removal keeps the configuration");
    run("dpkg", &["-P", package]);
    assert!(!Path::new(config).exists(), "purging removes it");
    let state = format!("/var/lib/{package}");
    assert!(Path::new(&state).is_dir(), "the state (spool, baseline, tables) is never removed by the package");
    std::fs::remove_dir(&state).unwrap();
}

#[test]
fn the_packages_install_run_and_leave_no_unit_behind() {
    let uid = run("id", &["-u"]);
    assert_eq!(String::from_utf8_lossy(&uid.stdout).trim(), "0", "installing packages needs root (CI runs as root)");
    let binaries = common::agent_binary().parent().unwrap().to_path_buf();
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package");
    let built = run(
        script.to_str().unwrap(),
        &["--binaries", binaries.to_str().unwrap(), "--out", out.path().to_str().unwrap(), "--no-compress"],
    );
    let packages: Vec<String> = String::from_utf8_lossy(&built.stdout).lines().map(str::to_string).collect();
    let find = |suffix: &str| packages.iter().find(|p| p.ends_with(suffix)).unwrap_or_else(|| panic!("{packages:?}"));
    let version = env!("CARGO_PKG_VERSION");

    install_and_remove(
        find(&format!("fimlake-agent_{version}_amd64.deb")),
        "fimlake-agent",
        "fimlake-agent",
        "/etc/fimlake-agent/fimlake-agent.toml",
    );
    install_and_remove(
        find(&format!("fimlake_{version}_amd64.deb")),
        "fimlake",
        "fimlake",
        "/etc/fimlake/fimlake.toml",
    );

    // The .rpm holds the same files and scriptlets (this Debian host lists it, cannot install it).
    let rpm = find(".x86_64.rpm");
    let files = String::from_utf8_lossy(&run("rpm", &["-qpl", rpm]).stdout).to_string();
    for file in [
        "/usr/bin/fimlake-agent",
        "/usr/lib/systemd/system/fimlake-agent.service",
        "/etc/fimlake-agent/fimlake-agent.toml",
    ] {
        assert!(files.lines().any(|l| l == file), "{file} in {files}");
    }
    let scripts = String::from_utf8_lossy(&run("rpm", &["-qp", "--scripts", rpm]).stdout).to_string();
    assert!(scripts.contains("multi-user.target.wants/fimlake-agent.service"), "{scripts}");
}
