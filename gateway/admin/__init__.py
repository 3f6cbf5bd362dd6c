"""The admin surfaces: the page and its JSON API, admin sign-in, and the workers' screens
(noVNC) relayed behind it."""
