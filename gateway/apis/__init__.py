"""The APIs clients speak, each in a package of its own: routes, request schemas, rendering.
`requests` holds what their request bodies share."""
