//! The route the request-reading targets judge bodies for: an enforcing route with the
//! defaults, exactly as config builds it.

pub fn route() -> &'static lastmile::config::RouteConfig {
    static ROUTE: std::sync::OnceLock<lastmile::config::RouteConfig> = std::sync::OnceLock::new();
    ROUTE.get_or_init(|| {
        let yaml = "policies: {dir: p}\nroutes: [{name: crm, prefix: /crm, upstream: 'http://127.0.0.1:1'}]\n";
        let mut config = lastmile::config::Config::from_yaml(yaml, std::path::Path::new("/"))
            .expect("the fuzz route's config is valid");
        config.routes.remove(0)
    })
}
