"""The web layer: the Flask app factory, the API blueprints and the WSGI server."""
