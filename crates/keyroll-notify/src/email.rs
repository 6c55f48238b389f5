//! E-mail over SMTP with lettre: `STARTTLS` (required, never opportunistic) or TLS from the
//! first byte, optional `AUTH` (PLAIN/LOGIN) — what Amazon SES's SMTP interface expects
//! (`email-smtp.REGION.amazonaws.com`, port 587 with STARTTLS or 465 with TLS, SMTP
//! credentials).

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::channel::{Deliver, DeliveryError};
use crate::config::{EmailConfig, NotifyConfigError, SmtpSecurity};
use crate::event::RotationEvent;
use crate::format;

pub(crate) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    prefix: String,
    endpoint: String,
}

impl Email {
    pub(crate) fn new(c: &EmailConfig, name: &str) -> Result<Self, NotifyConfigError> {
        let err = |message: String| NotifyConfigError::Channel {
            channel: name.into(),
            message,
        };
        let port = c.port.unwrap_or(c.security.default_port());
        let tls = if c.security == SmtpSecurity::None {
            Tls::None
        } else {
            let mut params = TlsParameters::builder(c.host.clone());
            if let Some(path) = &c.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| err(format!("cannot read ca_file {}: {e}", path.display())))?;
                let cert = Certificate::from_pem(&pem).map_err(|_| {
                    err(format!(
                        "ca_file {} holds no PEM certificate",
                        path.display()
                    ))
                })?;
                params = params
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            } else {
                params = params.certificate_store(CertificateStore::WebpkiRoots);
            }
            let params = params
                .build_rustls()
                .map_err(|e| err(format!("TLS set-up for {}: {e}", c.host)))?;
            match c.security {
                SmtpSecurity::Starttls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(c.timeout_secs)));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.expose_secret().into()));
        }
        let from = c
            .from
            .parse()
            .map_err(|_| err(format!("from {:?} is not an e-mail address", c.from)))?;
        let to =
            c.to.iter()
                .map(|t| {
                    t.parse()
                        .map_err(|_| err(format!("to {t:?} is not an e-mail address")))
                })
                .collect::<Result<Vec<Mailbox>, _>>()?;
        Ok(Email {
            transport: builder.build(),
            from,
            to,
            prefix: c
                .subject_prefix
                .clone()
                .unwrap_or_else(|| "[keyroll]".into()),
            endpoint: format!("{}:{port}", c.host),
        })
    }

    fn message(&self, event: &RotationEvent) -> Result<Message, DeliveryError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(format!("{} {}", self.prefix, format::email_subject(event)))
            .header(ContentType::TEXT_PLAIN);
        let mut seen = std::collections::BTreeSet::new();
        for to in &self.to {
            if seen.insert(to.email.to_string().to_ascii_lowercase()) {
                b = b.to(to.clone());
            }
        }
        // Extra recipients from the secret's keyroll:notify-email tag (already validated).
        for extra in &event.routing.extra_email {
            if let Ok(mb) = extra.parse::<Mailbox>()
                && seen.insert(mb.email.to_string().to_ascii_lowercase())
            {
                b = b.to(mb);
            }
        }
        b.body(format::email_body(event))
            .map_err(|e| DeliveryError::Permanent(format!("cannot build the e-mail: {e}")))
    }
}

#[async_trait]
impl Deliver for Email {
    fn target(&self) -> String {
        format!("smtp://{}", self.endpoint)
    }

    async fn deliver(&self, event: &RotationEvent) -> Result<(), DeliveryError> {
        let msg = self.message(event)?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = format!("SMTP {}: {e}", self.endpoint);
                if e.is_permanent() {
                    Err(DeliveryError::Permanent(text))
                } else {
                    Err(DeliveryError::Transient(text))
                }
            }
        }
    }
}
