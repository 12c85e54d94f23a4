//! The webhook settings, each a flag and an environment variable, read by both binaries.
//! Callbacks: the producer checks a task's `callback_url` at submit (`CALLBACK_ALLOW_PRIVATE`),
//! the consumer signs and delivers (all four). Hooks: the consumer writes the hook URLs
//! (`PUBLIC_URL`, `HOOK_SECRET`), the producer checks them (`HOOK_SECRET`).
//!
//! Secrets are parsed by a parser of their own, not clap's `FromStr` bridge: clap quotes a
//! refused value in its error, and this value is the secret.

use std::ffi::OsStr;
use std::fmt::Display;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use crate::hook::{HookSecret, HookUrls};
use crate::sign::CallbackSecret;

/// How callbacks are signed and delivered.
#[derive(Debug, Clone, clap::Args)]
pub struct CallbackSettings {
    /// The secret callbacks are signed with, Standard Webhooks style: whsec_ followed by the
    /// base64 of 24 to 64 random bytes (echo whsec_$(openssl rand -base64 32)). Unset:
    /// callbacks are sent unsigned. Never shown by --help or in logs.
    #[arg(
        long,
        env = "CALLBACK_SECRET",
        hide_env_values = true,
        value_parser = SecretParser::<CallbackSecret>::named("CALLBACK_SECRET (--callback-secret)")
    )]
    pub callback_secret: Option<CallbackSecret>,
    /// Attempts at delivering one callback (the first included) before it is given up.
    #[arg(
        long,
        env = "CALLBACK_MAX_ATTEMPTS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub callback_max_attempts: u32,
    /// How long one delivery may take in all, connecting included, before it counts as failed
    /// (ms).
    #[arg(
        long,
        env = "CALLBACK_TIMEOUT_MS",
        default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub callback_timeout_ms: u64,
    /// Allow callbacks to loopback, private, link-local (cloud metadata included) and other
    /// non-public addresses: for tests and receivers inside your own network. Off, such a
    /// callback URL is refused at submit and such an address is never connected to.
    #[arg(
        long,
        env = "CALLBACK_ALLOW_PRIVATE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub callback_allow_private: bool,
}

impl CallbackSettings {
    /// The whole time one delivery may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.callback_timeout_ms.max(1))
    }
}

impl Default for CallbackSettings {
    /// The defaults of the flags: unsigned, 10 attempts, 5 s, public addresses only.
    fn default() -> Self {
        Self {
            callback_secret: None,
            callback_max_attempts: 10,
            callback_timeout_ms: 5000,
            callback_allow_private: false,
        }
    }
}

/// Where providers call back, and the secret of the URLs they are given.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HookSettings {
    /// The URL at which providers reach the producer (its /hooks/... routes), such as
    /// https://taskq.example.com: the start of every {{webhook_url}} the consumer writes into a
    /// submit. Needed, with HOOK_SECRET, by a consumer whose profiles use {{webhook_url}}.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The secret that signs hook URLs (at least 16 bytes; the same on producers and consumers).
    /// Unset: the producer serves no /hooks route. Never shown by --help or in logs.
    #[arg(
        long,
        env = "HOOK_SECRET",
        hide_env_values = true,
        value_parser = SecretParser::<HookSecret>::named("HOOK_SECRET (--hook-secret)")
    )]
    pub hook_secret: Option<HookSecret>,
}

/// Why the hook settings cannot make hook URLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookSettingsError {
    /// A profile uses `{{webhook_url}}` and a setting is missing.
    #[error("{{{{webhook_url}}}} needs both PUBLIC_URL and HOOK_SECRET (missing: {0})")]
    Missing(&'static str),
    /// `PUBLIC_URL` is not an http(s) URL without query or fragment.
    #[error("PUBLIC_URL must be an http:// or https:// URL without query or fragment: {0}")]
    BadPublicUrl(String),
}

impl HookSettings {
    /// The hook URLs' maker, for a consumer whose profiles use `{{webhook_url}}`.
    ///
    /// # Errors
    /// [`HookSettingsError`] when a setting is missing or `PUBLIC_URL` is not a base URL.
    pub fn urls(&self) -> Result<HookUrls, HookSettingsError> {
        let public_url = self
            .public_url
            .as_deref()
            .ok_or(HookSettingsError::Missing("PUBLIC_URL"))?;
        let secret = self
            .hook_secret
            .clone()
            .ok_or(HookSettingsError::Missing("HOOK_SECRET"))?;
        let parsed = reqwest::Url::parse(public_url)
            .map_err(|err| HookSettingsError::BadPublicUrl(err.to_string()))?;
        let fits = matches!(parsed.scheme(), "http" | "https")
            && parsed.query().is_none()
            && parsed.fragment().is_none()
            && parsed.has_host();
        if !fits {
            return Err(HookSettingsError::BadPublicUrl(public_url.to_owned()));
        }
        Ok(HookUrls::new(public_url, secret))
    }
}

/// Parses a secret setting, and when it is refused says why without the value.
#[derive(Debug)]
struct SecretParser<T> {
    setting: &'static str,
    secret: PhantomData<fn() -> T>,
}

impl<T> Clone for SecretParser<T> {
    fn clone(&self) -> Self {
        Self::named(self.setting)
    }
}

impl<T> SecretParser<T> {
    fn named(setting: &'static str) -> Self {
        Self {
            setting,
            secret: PhantomData,
        }
    }
}

impl<T> clap::builder::TypedValueParser for SecretParser<T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: Display,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let refuse = |reason: &dyn Display| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{}: {reason}\n", self.setting),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| refuse(&"not UTF-8"))?;
        text.parse().map_err(|err| refuse(&err))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        callback: CallbackSettings,
        #[command(flatten)]
        hooks: HookSettings,
    }

    fn hooks(args: &[&str]) -> Result<HookSettings, clap::Error> {
        Cli::try_parse_from(std::iter::once("taskq").chain(args.iter().copied()))
            .map(|cli| cli.hooks)
    }

    #[test]
    fn hook_urls_need_both_settings_and_a_base_url_and_the_secret_never_shows() {
        let secret = "a-hook-secret-of-some-length";
        let both = hooks(&[
            "--public-url",
            "https://t.example/",
            "--hook-secret",
            secret,
        ])
        .unwrap();
        assert!(
            both.urls()
                .unwrap()
                .url("q", "n", "7")
                .starts_with("https://t.example/hooks/q/n?run=7&sig=")
        );
        assert!(!format!("{both:?}").contains(secret));
        assert_eq!(
            hooks(&["--hook-secret", secret])
                .unwrap()
                .urls()
                .unwrap_err(),
            HookSettingsError::Missing("PUBLIC_URL")
        );
        assert_eq!(
            hooks(&["--public-url", "https://t.example"])
                .unwrap()
                .urls()
                .unwrap_err(),
            HookSettingsError::Missing("HOOK_SECRET")
        );
        for bad in ["ftp://t.example", "https://t.example/?a=1", "not a url"] {
            let settings = hooks(&["--public-url", bad, "--hook-secret", secret]).unwrap();
            assert!(settings.urls().is_err(), "{bad}");
        }
        let refused = hooks(&["--hook-secret", "short!"]).unwrap_err().to_string();
        assert!(
            refused.contains("HOOK_SECRET") && !refused.contains("short!"),
            "{refused}"
        );
    }

    fn parse(args: &[&str]) -> Result<CallbackSettings, clap::Error> {
        Cli::try_parse_from(std::iter::once("taskq").chain(args.iter().copied()))
            .map(|cli| cli.callback)
    }

    #[test]
    fn defaults_are_unsigned_ten_attempts_five_seconds_public_only() {
        let settings = parse(&[]).unwrap();
        assert!(settings.callback_secret.is_none());
        assert_eq!(settings.callback_max_attempts, 10);
        assert_eq!(settings.timeout(), Duration::from_secs(5));
        assert!(!settings.callback_allow_private);
        let default = CallbackSettings::default();
        assert_eq!(default.callback_max_attempts, 10);
        assert_eq!(default.callback_timeout_ms, 5000);
    }

    #[test]
    fn flags_are_read_and_zero_attempts_or_timeout_refused() {
        let settings = parse(&[
            "--callback-secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "--callback-max-attempts",
            "3",
            "--callback-timeout-ms",
            "250",
            "--callback-allow-private",
        ])
        .unwrap();
        assert!(settings.callback_secret.is_some());
        assert_eq!(settings.callback_max_attempts, 3);
        assert_eq!(settings.timeout(), Duration::from_millis(250));
        assert!(settings.callback_allow_private);
        assert!(parse(&["--callback-max-attempts", "0"]).is_err());
        assert!(parse(&["--callback-timeout-ms", "0"]).is_err());
    }

    #[test]
    fn a_bad_secret_is_refused_without_echoing_it() {
        let refused = parse(&["--callback-secret", "whsec_c2hvcnQtc2VjcmV0LXZhbHVl"])
            .expect_err("refused")
            .to_string();
        assert!(refused.contains("CALLBACK_SECRET"), "{refused}");
        assert!(refused.contains("at least 24"), "{refused}");
        assert!(!refused.contains("c2hvcnQtc2VjcmV0LXZhbHVl"), "{refused}");

        let refused = parse(&["--callback-secret", "hunter2hunter2hunter2hunter2"])
            .expect_err("refused")
            .to_string();
        assert!(!refused.contains("hunter2"), "{refused}");
    }

    #[test]
    fn the_settings_print_without_the_secret() {
        let settings = parse(&[
            "--callback-secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])
        .unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
