# The ecom image: the `ecom` binary (serve, sink, generate, train, job, dashboard, ...), the
# XGBoost library it links, the Flink job jar and the Kibana objects. docker-compose.yml builds
# it; `docker build --build-arg ECOM_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t ecom .`
# by hand. The build compiles XGBoost and librdkafka from source (the longest step).
# The dashboard's chart library (vega) from npm, embedded into the binary by ecom-dash's build.
FROM node:20-bookworm-slim AS dashboard
WORKDIR /dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      cmake ninja-build clang libclang-dev protobuf-compiler pkg-config \
      libssl-dev libsasl2-dev zlib1g-dev libcurl4-openssl-dev \
      openjdk-17-jdk-headless maven \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
COPY --from=dashboard /dashboard/node_modules dashboard/node_modules
ARG ECOM_GIT_COMMIT=unknown
ENV ECOM_GIT_COMMIT=${ECOM_GIT_COMMIT} CARGO_TARGET_DIR=/src/target
RUN cargo build --locked --release -p ecom-cli -p ecom-jni -p ecom-jni-serve
RUN cd flink-job && mvn -B -q -Decom.native.dir=/src/target/release \
      -Decom.commit="${ECOM_GIT_COMMIT}" -DskipTests package
# libxgboost.so.3 sits in a hashed build directory: gather it for the next stage.
RUN mkdir /out && cp -L target/release/build/xgboost_lib-sys-*/out/lib/libxgboost.so.3 /out/ \
    && cp target/release/ecom target/release/libecom_jni_serve.so flink-job/target/ecom-flink-job.jar /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates libgomp1 libssl3 libsasl2-2 zlib1g libcurl4 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ecom /usr/local/bin/ecom
COPY --from=build /out/libxgboost.so.3 /out/libecom_jni_serve.so /usr/local/lib/
RUN ldconfig
COPY --from=build /out/ecom-flink-job.jar /opt/ecom/ecom-flink-job.jar
COPY kibana /opt/ecom/kibana
ENV ECOM_JOB_JAR=/opt/ecom/ecom-flink-job.jar
ENTRYPOINT ["ecom"]
CMD ["--help"]
