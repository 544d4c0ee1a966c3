//! Connection URLs that carry a password (`DATABASE_URL`, `REDIS_URL`): the
//! password is kept as a secret and never appears in `Debug` or `Display`.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

/// A URL whose password is redacted wherever it is printed.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    /// The whole URL, password included: only for connecting.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with its password (if any) replaced by `***`: the one after
    /// `user:` (up to the last `@`, so an unescaped `@`, `/` or `?` in the
    /// password stays hidden too) and the value of a `password` or
    /// `sslpassword` query parameter.
    pub fn redacted(&self) -> String {
        let url = self.expose();
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
        let mut out = url.to_owned();
        if let Some(at) = url[scheme_end..].rfind('@').map(|i| scheme_end + i)
            && let Some(colon) = url[scheme_end..at].find(':').map(|i| scheme_end + i)
            // `host:port/db?user=a@b` is not a password: before the colon, no path.
            && !url[scheme_end..colon].contains(['/', '?', '#'])
        {
            out = format!("{}:***{}", &url[..colon], &url[at..]);
        }
        match out.split_once('?') {
            Some((base, query)) => {
                let params: Vec<String> = query
                    .split('&')
                    .map(|p| match p.split_once('=') {
                        Some((k, _)) if ["password", "sslpassword"].contains(&k.to_ascii_lowercase().as_str()) => {
                            format!("{k}=***")
                        }
                        _ => p.to_owned(),
                    })
                    .collect();
                format!("{base}?{}", params.join("&"))
            }
            None => out,
        }
    }
}

impl FromStr for SecretUrl {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Self::from(s.to_owned()))
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(SecretString::from(url))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> SecretUrl {
        s.parse().unwrap()
    }

    #[test]
    fn the_password_is_redacted_and_the_rest_kept() {
        let db = url("postgres://facerec:s3cr%40t@db.example:5432/facerec?sslmode=require");
        assert_eq!(db.redacted(), "postgres://facerec:***@db.example:5432/facerec?sslmode=require");
        assert_eq!(db.to_string(), db.redacted());
        assert!(!format!("{db:?}").contains("s3cr"), "{db:?}");
        assert_eq!(db.expose(), "postgres://facerec:s3cr%40t@db.example:5432/facerec?sslmode=require");
        assert_eq!(url("redis://:hunter2@cache:6379/0").redacted(), "redis://:***@cache:6379/0");
        // An '@', '/' or '?' in the password, unescaped: everything up to the last '@' is hidden.
        assert_eq!(url("postgres://u:p@ss@h/db").redacted(), "postgres://u:***@h/db");
        assert_eq!(url("postgres://u:pa/ss@h/db").redacted(), "postgres://u:***@h/db");
        assert_eq!(url("postgres://u:pa?ss@h/db").redacted(), "postgres://u:***@h/db");
        // sqlx also takes the password as a query parameter.
        assert_eq!(
            url("postgres://h/db?user=u&password=hunter2&sslmode=require").redacted(),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
    }

    #[test]
    fn urls_without_a_password_print_as_they_are() {
        for plain in [
            "redis://127.0.0.1:6379/",
            "postgres://postgres@localhost/facerec",
            "postgres:///facerec?host=/run",
            "not a url",
        ] {
            assert_eq!(url(plain).redacted(), plain);
        }
        // An '@' after the authority is not a password.
        assert_eq!(url("postgres://h/db?user=a@b").redacted(), "postgres://h/db?user=a@b");
    }
}
