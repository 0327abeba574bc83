//! Credentials out of URLs before they are shown: in messages, errors, `Debug` output
//! and log lines. The one place that knows how (the store, artifact and CLI code call
//! it); public so that programs embedding dagforge show store URLs the same way.

/// `url` without its user info (user and password), query and fragment: what is safe
/// to print. Works on any text: a string that is not a URL comes back without the
/// query and fragment, and without anything before an `@` in its authority.
///
/// `postgres://app:s3cret@db:5432/runs?sslpassword=x` → `postgres://db:5432/runs`;
/// `sqlite://data/runs.db` and plain paths are unchanged.
///
/// ```
/// assert_eq!(
///     dagforge::redact::url("postgres://app:s3cret@db:5432/runs?sslpassword=x"),
///     "postgres://db:5432/runs"
/// );
/// ```
pub fn url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..start], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_query_and_fragment_go() {
        for (given, shown) in [
            (
                "postgres://app:s3cret@db:5432/runs?sslpassword=x",
                "postgres://db:5432/runs",
            ),
            ("postgres://app@db/runs", "postgres://db/runs"),
            ("postgres://a:b@c@db/runs", "postgres://db/runs"),
            ("a://u:p@b/p", "a://b/p"),
            ("s3:/x:y@b/p?q", "s3:/x:y@b/p"),
            ("sqlite://data/runs.db", "sqlite://data/runs.db"),
            ("sqlite:///tmp/a@b.db", "sqlite:///tmp/a@b.db"),
            ("runs.db", "runs.db"),
            ("memory://", "memory://"),
            ("", ""),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
        assert!(!url("postgres://u:pw@h/d").contains("pw"));
    }

    proptest::proptest! {
        /// Whatever the text, a password placed in the user info never survives.
        #[test]
        fn a_password_never_survives(
            scheme in "[a-z]{1,8}",
            user in "[a-z]{0,6}",
            host in "[a-z0-9.]{0,12}",
            path in "[a-z/]{0,12}",
            query in "[a-z=&]{0,12}",
        ) {
            let secret = "Pa55w0rdZ";
            let given = format!("{scheme}://{user}:{secret}@{host}/{path}?{query}&password={secret}");
            proptest::prop_assert!(!url(&given).contains(secret), "{given}");
        }

        /// Random text: no panic.
        #[test]
        fn any_text(s in ".{0,64}") {
            let _ = url(&s);
        }
    }
}
