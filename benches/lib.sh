# Helpers sourced by the benchmark scripts (load.sh, cluster.sh).

# wait_for_port PORT: until something listens on 127.0.0.1:PORT (10 s at most).
wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; return 1
}

# The median of the numbers on stdin, one per line (the lower middle one when even).
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# cpu_ticks PID: CPU time process PID has used so far, user + system over all its
# threads, in clock ticks (`getconf CLK_TCK` per second; /proc/PID/stat fields 14, 15).
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

# cluster_port: a port free on loopback whose Redis Cluster bus port (+10000) is free too.
cluster_port() {
  python3 -c 'import socket,random
def free(p):
    s = socket.socket()
    try: s.bind(("127.0.0.1", p)); return True
    except OSError: return False
    finally: s.close()
while True:
    p = random.randint(20000, 29999)
    if free(p) and free(p + 10000): print(p); break'
}
