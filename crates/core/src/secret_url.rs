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

    /// The URL with its password (if any) replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = self.expose();
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
        let authority_end = url[scheme_end..].find(['/', '?', '#']).map_or(url.len(), |i| scheme_end + i);
        let Some(at) = url[scheme_end..authority_end].rfind('@').map(|i| scheme_end + i) else {
            return url.to_owned();
        };
        match url[scheme_end..at].find(':').map(|i| scheme_end + i) {
            Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
            None => url.to_owned(),
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
        // An '@' in the password, unescaped: everything up to the last '@' of the authority is hidden.
        assert_eq!(url("postgres://u:p@ss@h/db").redacted(), "postgres://u:***@h/db");
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
