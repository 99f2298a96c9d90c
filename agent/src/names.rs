//! User and group names of ids, from `/etc/passwd` and `/etc/group` (read once; ids without a
//! name are printed as numbers).

use std::collections::HashMap;
use std::sync::OnceLock;

fn table(path: &str) -> HashMap<u32, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            Some((id, name.to_string()))
        })
        .collect()
}

pub fn user(uid: u32) -> String {
    static USERS: OnceLock<HashMap<u32, String>> = OnceLock::new();
    USERS.get_or_init(|| table("/etc/passwd")).get(&uid).cloned().unwrap_or_else(|| uid.to_string())
}

pub fn group(gid: u32) -> String {
    static GROUPS: OnceLock<HashMap<u32, String>> = OnceLock::new();
    GROUPS.get_or_init(|| table("/etc/group")).get(&gid).cloned().unwrap_or_else(|| gid.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_has_a_name() {
        assert_eq!(super::user(0), "root");
        assert_eq!(super::group(0), "root");
        assert_eq!(super::user(4_000_000_000), "4000000000");
    }
}
