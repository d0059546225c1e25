# nginx in front of the score-server replicas: Debian 12's nginx-light
# (1.22, the nginx the fleet tests run) with the shipped configuration,
# nginx/nginx.conf and nginx/score-proxy.conf, unchanged: the compose file
# names the replicas score-1..3 as its upstream list does. For more or
# fewer replicas, mount an nginx.conf with another upstream list over
# /etc/nginx/nginx.conf.
#   docker build -f docker/nginx.Dockerfile -t score-nginx .
# Runs as www-data with a read-only root filesystem: the configuration puts
# its pid and request bodies under /tmp, and its other temporary files go
# to /var/lib/nginx; both are tmpfs in docker/compose.yaml. Errors go to
# stderr (`docker logs`); the access log is off, as configured.
FROM debian:bookworm-slim
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/nginx/* \
 && rm -f /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*
COPY nginx/nginx.conf /etc/nginx/nginx.conf
COPY nginx/score-proxy.conf /etc/nginx/score-proxy.conf
USER www-data
EXPOSE 8080
# SIGQUIT: nginx finishes the requests it is forwarding, then exits.
STOPSIGNAL SIGQUIT
CMD ["nginx", "-e", "stderr", "-g", "daemon off;"]
