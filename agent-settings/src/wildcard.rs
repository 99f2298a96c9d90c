/// `*` (any run) and `?` (one character) matching of a whole string.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn stars_and_question_marks() {
        assert!(wildcard("*.conf", "resolv.conf"));
        assert!(!wildcard("*.conf", "resolv.conf.bak"));
        assert!(wildcard("cron.?aily", "cron.daily"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("?", ""));
    }
}
