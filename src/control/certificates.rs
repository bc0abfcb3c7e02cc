//! TLS certificates of group domains: uploaded and checked, read as metadata only, removed with
//! their domain, and handed to the serving side as rustls keys.
//!
//! A certificate belongs to one domain of one group ([`DomainCertificate`], keyed
//! `group:domain`). Its private key is a [`Secret`](crate::model::Secret): sealed at rest by
//! `SealedStore`, in the full export (as apps' secrets are) and in nothing else a read returns.
//! Removing a domain from a group, or deleting the group, deletes its certificates in the same
//! commit. Every change goes through the store's change feed, so every node of a cluster sees
//! it; [`ControlPlane::watch_certificates`] tells the serving side when to reload.

use super::state::State;
use super::{ControlError, ControlPlane, Result, delete};
use crate::model::{CertificateInfo, DomainCertificate, Group, GroupId, ValidationError};
use crate::store::{Key, Write};

/// The group's own spelling of `domain` (compared without regard to ASCII case).
fn bound_domain<'g>(group: &'g Group, domain: &str) -> Result<&'g str> {
    group
        .domains
        .iter()
        .find(|d| d.eq_ignore_ascii_case(domain))
        .map(String::as_str)
        .ok_or_else(|| {
            let bound = if group.domains.is_empty() {
                "it has none".to_owned()
            } else {
                format!("its domains: {}", group.domains.join(", "))
            };
            ValidationError::field(
                "domain",
                format!(
                    "`{}` is not a domain of group `{}` ({bound})",
                    crate::model::id::truncate(domain),
                    group.name
                ),
            )
            .into()
        })
}

impl State {
    /// The deletes of `group`'s certificates whose domain is not in `domains` (`None`: every
    /// one, the group is going).
    pub(crate) fn dropped_certificates(
        &self,
        group: &GroupId,
        domains: Option<&[String]>,
    ) -> Vec<Write> {
        let mut keys: Vec<Key> = self
            .certificates
            .values()
            .map(|c| &c.value)
            .filter(|c| &c.group_id == group)
            .filter(|c| {
                domains.is_none_or(|ds| !ds.iter().any(|d| d.eq_ignore_ascii_case(&c.domain)))
            })
            .map(|c| Key::domain_certificate(&c.group_id, &c.domain))
            .collect();
        keys.sort();
        keys.into_iter().map(|k| delete(self, k)).collect()
    }
}

impl ControlPlane {
    /// Checks and stores the TLS certificate chain and private key (PEM) of `domain`, one of
    /// the group's domains, replacing any it had; returns what reads show of it.
    ///
    /// Refused, changing nothing, when the group does not exist, the domain is not one of its
    /// domains, or the pair does not pass [`CertificatePair::from_pem`](crate::tls::CertificatePair::from_pem)
    /// (unparsable, key not the certificate's, expired or not yet valid) or does not cover the
    /// domain.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for the group; [`ControlError::Validation`] naming the field
    /// (`domain`, `certificate` or `private_key`) and the problem.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::ControlPlane;
    /// use stagegate::control::NewGroup;
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// let g = cp.create_group(NewGroup { name: "shop_api".into(), domains: vec!["api.example.com".into()], ..Default::default() }).await.unwrap();
    /// let issued = rcgen::generate_simple_self_signed(vec!["api.example.com".into()]).unwrap();
    /// let (cert, key) = (issued.cert.pem(), issued.signing_key.serialize_pem());
    ///
    /// let info = cp.set_domain_certificate(&g.id, "api.example.com", &cert, &key).await.unwrap();
    /// assert_eq!(info.dns_names, ["api.example.com"]);
    /// assert_eq!(cp.domain_certificate(&g.id, "api.example.com").await.unwrap(), info);
    /// assert_eq!(cp.domain_certificates().await[0].0, "api.example.com");
    ///
    /// let err = cp.set_domain_certificate(&g.id, "www.example.com", &cert, &key).await.unwrap_err();
    /// assert!(err.to_string().contains("not a domain of group `shop_api`"), "{err}");
    /// # });
    /// ```
    #[cfg(feature = "tls")]
    pub async fn set_domain_certificate(
        &self,
        group_id: &GroupId,
        domain: &str,
        certificate_pem: &str,
        private_key_pem: &str,
    ) -> Result<CertificateInfo> {
        let pair = crate::tls::CertificatePair::from_pem(certificate_pem, private_key_pem);
        let mut state = self.state.lock().await;
        let group = state.group(group_id)?;
        let domain = bound_domain(group, domain)?.to_owned();
        let pair = pair?;
        pair.check_domain(&domain)?;
        let record = DomainCertificate {
            group_id: group.id.clone(),
            domain,
            certificate: certificate_pem.to_owned(),
            private_key: private_key_pem.into(),
            dns_names: pair
                .dns_names()
                .iter()
                .cloned()
                .chain(pair.ip_addresses().iter().map(ToString::to_string))
                .collect(),
            not_before: pair.not_before(),
            not_after: pair.not_after(),
            sha256_fingerprint: pair.sha256_fingerprint().to_owned(),
            updated_at: jiff::Timestamp::now(),
        };
        let info = record.info();
        let w = super::put(&state, crate::store::Entity::DomainCertificate(record));
        self.commit_one(&mut state, w).await?;
        Ok(info)
    }

    /// What is shown of a domain's certificate (never its key).
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for the group, or when the domain has no certificate.
    pub async fn domain_certificate(
        &self,
        group_id: &GroupId,
        domain: &str,
    ) -> Result<CertificateInfo> {
        let state = self.state.lock().await;
        let group = state.group(group_id)?;
        let domain = bound_domain(group, domain)?;
        state
            .certificates
            .get(&(group_id.clone(), domain.to_owned()))
            .map(|c| c.value.info())
            .ok_or_else(|| {
                ControlError::not_found("domain certificate", format!("{group_id}/{domain}"))
            })
    }

    /// What is shown of every certificate of a group's domains, by domain.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for the group.
    pub async fn group_certificates(&self, group_id: &GroupId) -> Result<Vec<CertificateInfo>> {
        let state = self.state.lock().await;
        state.group(group_id)?;
        let mut v: Vec<CertificateInfo> = state
            .certificates
            .values()
            .filter(|c| &c.value.group_id == group_id)
            .map(|c| c.value.info())
            .collect();
        v.sort_by(|a, b| a.domain.cmp(&b.domain));
        Ok(v)
    }

    /// Deletes a domain's certificate.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for the group, or when the domain has no certificate;
    /// [`ControlError::Validation`] when the domain is not one of the group's.
    pub async fn delete_domain_certificate(&self, group_id: &GroupId, domain: &str) -> Result<()> {
        let mut state = self.state.lock().await;
        let group = state.group(group_id)?;
        let domain = bound_domain(group, domain)?.to_owned();
        let key = Key::domain_certificate(group_id, &domain);
        if state.version_of(&key).is_none() {
            return Err(ControlError::not_found(
                "domain certificate",
                format!("{group_id}/{domain}"),
            ));
        }
        let w = delete(&state, key);
        self.commit_one(&mut state, w).await
    }

    /// Every stored domain certificate as rustls serves it: the server name (the domain in
    /// lower case, without a port) and its chain and key, by name. When groups share a domain,
    /// the certificate uploaded last wins. A certificate that expired since its upload is still
    /// listed (and logged): a client then says why it refuses it. Hand these to the TLS
    /// listener's certificate resolver, again whenever
    /// [`watch_certificates`](Self::watch_certificates) says they changed.
    #[cfg(feature = "tls")]
    pub async fn domain_certificates(
        &self,
    ) -> Vec<(String, std::sync::Arc<rustls::sign::CertifiedKey>)> {
        let state = self.state.lock().await;
        let mut newest: std::collections::BTreeMap<String, &DomainCertificate> =
            std::collections::BTreeMap::new();
        for c in state.certificates.values().map(|c| &c.value) {
            // a record whose domain left its group (a store written elsewhere) is not served
            let bound = state.groups.get(&c.group_id).is_some_and(|g| {
                g.value
                    .domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(&c.domain))
            });
            if !bound {
                continue;
            }
            let name = crate::tls::server_name(&c.domain);
            match newest.get(&name) {
                Some(o) if o.updated_at >= c.updated_at => {}
                _ => {
                    newest.insert(name, c);
                }
            }
        }
        let now = jiff::Timestamp::now();
        newest
            .into_iter()
            .filter_map(|(name, c)| {
                match crate::tls::CertificatePair::from_pem_any_time(
                    &c.certificate,
                    c.private_key.expose(),
                ) {
                    Ok(pair) => {
                        if pair.not_after() < now {
                            tracing::warn!(domain = %c.domain, group = %c.group_id, not_after = %pair.not_after(), "serving an expired domain certificate: upload a new one");
                        }
                        Some((name, pair.certified_key()))
                    }
                    Err(e) => {
                        tracing::error!(domain = %c.domain, group = %c.group_id, error = %e, "stored domain certificate cannot be served");
                        None
                    }
                }
            })
            .collect()
    }

    /// A receiver whose value changes whenever a domain certificate was stored, replaced or
    /// deleted here or (through the change feed) on another node, or the state was reloaded:
    /// the serving side then reads [`domain_certificates`](Self::domain_certificates) again.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::ControlPlane;
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// let changes = cp.watch_certificates();
    /// assert!(!changes.has_changed().unwrap());
    /// # });
    /// ```
    #[must_use]
    pub fn watch_certificates(&self) -> tokio::sync::watch::Receiver<u64> {
        self.certificates_changed.subscribe()
    }
}
