"""The operator console at ``/console``: plain HTML, CSS and JavaScript shipped with the package
(no build step), served by the daemon, signed in with the admin token (``bot.http.sessions``).
The pages are a shell; their data comes from the operator API (``bot.http.operator``,
``bot.http.console_api``) called with the session cookie and its CSRF token.
"""
