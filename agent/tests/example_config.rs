//! The example configuration in `examples/` loads, and says what it says.

#[test]
fn the_example_configuration_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/fimlake-agent.toml");
    let cfg = fimlake_agent::config::AgentConfig::load(std::path::Path::new(path)).unwrap();
    assert_eq!(cfg.items.len(), 2);
    assert_eq!(cfg.items[1].path, "/etc/ssh/sshd_config");
    assert!(cfg.items[1].upload_content && cfg.items[1].recursive);
    assert_eq!(cfg.scan_interval, std::time::Duration::from_secs(900));
}
