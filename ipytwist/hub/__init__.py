"""ipytwist as JupyterHub's single-user server: the hub's environment, its OAuth and
API tokens as an authenticator of the site, and activity reports (docs/jupyterhub.md)."""
