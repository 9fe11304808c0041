# raftmq's container image: raftmq, raftmq-broker and raftmq-namesrv on an empty base.
#
# Build it with scripts/image, which compiles the binaries with cargo and gathers them,
# and the shared libraries `ldd` lists for them, into the build context's rootfs/
# first: nothing is pulled from a registry.
#
#   podman run --network host raftmq raftmq-namesrv --listen 127.0.0.1:9876
#   podman run --network host -v ./broker.toml:/etc/raftmq/broker.toml:ro \
#     -v raftmq-data:/data -e RAFTMQ_CONFIG=/etc/raftmq/broker.toml raftmq raftmq-broker
#
# Every broker setting comes from the mounted TOML, or a flag, or its environment
# variable (`raftmq-broker --help` names them: NAMESRV_ADDR, RAFTMQ_BROKER_NAME, ...).
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin RAFTMQ_STORE_PATH_ROOT_DIR=/data
WORKDIR /data
VOLUME /data
# Name server, broker, replica (Raft), metrics.
EXPOSE 9876 10911 10912 5557
CMD ["raftmq", "--help"]
