//! A server's table: routes with path parameters, middleware, the websocket path, and how a
//! request finds its route.

/// What a server does with a request; changes apply to a running server at once.
#[derive(Default)]
pub(super) struct Table {
    pub(super) routes: Vec<Route>,
    pub(super) middleware: Vec<Middleware>,
    pub(super) websocket: Option<WebsocketRoute>,
}

pub(super) struct Route {
    pub(super) id: u64,
    pub(super) method: String,
    pub(super) pattern: Pattern,
    pub(super) handler: u64,
}

pub(super) struct Middleware {
    pub(super) id: u64,
    pub(super) prefix: Pattern,
    pub(super) handler: u64,
}

#[derive(Clone)]
pub(super) struct WebsocketRoute {
    pub(super) path: Pattern,
    pub(super) connect: Option<u64>,
    pub(super) message: u64,
    pub(super) disconnect: Option<u64>,
}

/// A route's path: literal segments, `{name}` (or `:name`) parameters, and a trailing `{*name}`
/// (or `*`) that takes the rest.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct Pattern {
    pub(super) text: String,
    pub(super) segments: Vec<Segment>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

impl Pattern {
    pub(super) fn parse(text: &str) -> Result<Pattern, String> {
        if !text.starts_with('/') {
            return Err(format!("path {text:?} must start with `/`"));
        }
        let parts: Vec<&str> = text[1..].split('/').filter(|s| !s.is_empty()).collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let name = part
                .strip_prefix('{')
                .and_then(|p| p.strip_suffix('}'))
                .or_else(|| part.strip_prefix(':'));
            let segment = match (name, *part) {
                (_, "*") => Segment::Rest("rest".into()),
                (Some(name), _) if name.starts_with('*') => Segment::Rest(name[1..].into()),
                (Some(name), _) => Segment::Param(name.into()),
                (None, literal) => Segment::Literal(literal.into()),
            };
            if let Segment::Param(name) | Segment::Rest(name) = &segment
                && (name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
            {
                return Err(format!(
                    "path {text:?}: parameter {name:?} must be letters, digits, `_` or `-`"
                ));
            }
            if matches!(segment, Segment::Rest(_)) && i + 1 != parts.len() {
                return Err(format!("path {text:?}: `*` may only end a path"));
            }
            segments.push(segment);
        }
        Ok(Pattern {
            text: text.to_owned(),
            segments,
        })
    }

    /// The parameters, if `path` matches.
    pub(super) fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut parts = path.split('/').filter(|s| !s.is_empty());
        let mut params = Vec::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(l) => {
                    if parts.next()? != l {
                        return None;
                    }
                }
                Segment::Param(name) => params.push((name.clone(), parts.next()?.to_owned())),
                Segment::Rest(name) => {
                    params.push((name.clone(), parts.collect::<Vec<_>>().join("/")));
                    return Some(params);
                }
            }
        }
        parts.next().is_none().then_some(params)
    }

    /// Whether `path` is this prefix or beneath it, segment by segment.
    pub(super) fn prefixes(&self, path: &str) -> bool {
        let mut parts = path.split('/').filter(|s| !s.is_empty());
        self.segments.iter().all(|segment| match segment {
            Segment::Literal(l) => parts.next() == Some(l.as_str()),
            Segment::Param(_) => parts.next().is_some(),
            Segment::Rest(_) => true,
        })
    }

    /// Literal segments before parameters, parameters before a rest, segment by segment.
    fn rank(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 0,
                Segment::Param(_) => 1,
                Segment::Rest(_) => 2,
            })
            .collect()
    }
}

impl Table {
    /// The route for `method` and `path`, with its parameters; `Err(true)` when the path has
    /// routes but none for this method.
    pub(super) fn route(
        &self,
        method: &str,
        path: &str,
    ) -> Result<(u64, Vec<(String, String)>), bool> {
        let mut best: Option<(&Route, Vec<(String, String)>)> = None;
        let mut path_known = false;
        for route in &self.routes {
            let Some(params) = route.pattern.matches(path) else {
                continue;
            };
            path_known = true;
            if route.method != "*" && route.method != method {
                continue;
            }
            // The more specific path wins; on the same path, a method named before `*`.
            let key = |r: &Route| (r.pattern.rank(), r.method == "*");
            if best.as_ref().is_none_or(|(b, _)| key(route) < key(b)) {
                best = Some((route, params));
            }
        }
        best.map(|(r, p)| (r.handler, p)).ok_or(path_known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_literals_parameters_and_rests() {
        let p = Pattern::parse("/users/{id}/posts/:post").unwrap();
        assert_eq!(
            p.matches("/users/7/posts/9"),
            Some(vec![("id".into(), "7".into()), ("post".into(), "9".into())])
        );
        assert_eq!(p.matches("/users/7/posts"), None);
        assert_eq!(p.matches("/users/7/posts/9/x"), None);
        let rest = Pattern::parse("/files/{*path}").unwrap();
        assert_eq!(
            rest.matches("/files/a/b.txt"),
            Some(vec![("path".into(), "a/b.txt".into())])
        );
        assert!(Pattern::parse("/a/*/b").is_err());
        assert!(Pattern::parse("a").is_err());
        assert!(Pattern::parse("/{bad name}").is_err());
        let prefix = Pattern::parse("/api").unwrap();
        assert!(prefix.prefixes("/api/x"));
        assert!(prefix.prefixes("/api"));
        assert!(!prefix.prefixes("/apix"));
        assert!(Pattern::parse("/").unwrap().prefixes("/anything"));
    }

    #[test]
    fn literal_routes_win_and_methods_are_told_apart() {
        let mut table = Table::default();
        for (id, (method, path)) in [("GET", "/users/{id}"), ("GET", "/users/me"), ("POST", "/x")]
            .into_iter()
            .enumerate()
        {
            table.routes.push(Route {
                id: id as u64,
                method: method.into(),
                pattern: Pattern::parse(path).unwrap(),
                handler: id as u64 + 10,
            });
        }
        assert_eq!(table.route("GET", "/users/me").unwrap().0, 11);
        assert_eq!(table.route("GET", "/users/5").unwrap().0, 10);
        assert_eq!(table.route("GET", "/x"), Err(true));
        assert_eq!(table.route("GET", "/nowhere"), Err(false));
        // A rest added first does not shadow a longer literal prefix; `*` yields to a method.
        for (id, (method, path)) in [
            ("GET", "/{*any}"),
            ("GET", "/files/{*p}"),
            ("*", "/files/{*p}"),
        ]
        .into_iter()
        .enumerate()
        {
            table.routes.push(Route {
                id: 20 + id as u64,
                method: method.into(),
                pattern: Pattern::parse(path).unwrap(),
                handler: 30 + id as u64,
            });
        }
        assert_eq!(table.route("GET", "/files/a/b").unwrap().0, 31);
        assert_eq!(table.route("PUT", "/files/a").unwrap().0, 32);
        assert_eq!(table.route("GET", "/elsewhere").unwrap().0, 30);
    }
}
