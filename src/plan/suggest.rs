//! Edit distance for "did you mean …?" suggestions (unknown profile keys, unknown threshold
//! metrics).

/// Levenshtein distance between `a` and `b` (in chars).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("ramp", "ramp"), 0);
        assert_eq!(edit_distance("rmap", "ramp"), 2);
        assert_eq!(edit_distance("mesage", "message"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
