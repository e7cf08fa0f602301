//! Whether a Service is FerroLB's to serve: the one rule both the controller (allocate) and
//! the speaker (announce) must apply identically, or one would serve what the other ignores.

/// `spec.type` of a Service FerroLB serves.
pub const LOAD_BALANCER: &str = "LoadBalancer";

/// Whether `spec.type` is `LoadBalancer`.
pub fn is_load_balancer(service_type: Option<&str>) -> bool {
    service_type == Some(LOAD_BALANCER)
}

/// Whether a Service with `spec.type` `service_type` and `spec.loadBalancerClass` `class` is
/// handled by a FerroLB started with `--lb-class` `lb_class` (`None`: only class-less Services,
/// which is what the cloud-provider contract gives the default load balancer).
pub fn is_handled(service_type: Option<&str>, class: Option<&str>, lb_class: Option<&str>) -> bool {
    is_load_balancer(service_type) && class == lb_class
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_load_balancers_of_our_class_are_handled() {
        assert!(is_handled(Some("LoadBalancer"), None, None));
        assert!(is_handled(Some("LoadBalancer"), Some("x"), Some("x")));
        assert!(!is_handled(Some("LoadBalancer"), Some("x"), None));
        assert!(!is_handled(Some("LoadBalancer"), None, Some("x")));
        assert!(!is_handled(Some("LoadBalancer"), Some("y"), Some("x")));
        assert!(!is_handled(Some("ClusterIP"), None, None));
        assert!(!is_handled(None, None, None));
    }
}
