"""A stand-in for the application that signs users in, for the browser test: PyJWT
makes the tokens (not our code). Serves on 127.0.0.1:PORT until killed:

  GET /login?next=URL  sets the cookie `token` (user ada, valid LOGIN_SECONDS) and
                       redirects to URL, as a sign-in page would;
  GET /token           a fresh token (valid an hour), readable by any page (CORS).
"""
import sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import jwt

port, secret, login_seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def token(seconds):
    claims = {"sub": "ada", "name": "Ada", "exp": int(time.time()) + seconds}
    return jwt.encode(claims, secret, algorithm="HS256")

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/login":
            target = urllib.parse.parse_qs(url.query)["next"][0]
            self.send_response(302)
            self.send_header("Set-Cookie", f"token={token(login_seconds)}; Path=/; SameSite=Lax")
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/token":
            body = token(3600).encode()
            self.send_response(200)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
