package main

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// ping connects to a MongoDB-compatible server, runs {ping:1} and returns the version
// the server reports in buildInfo. dev/up and dev/status use it as the readiness probe,
// so no mongosh is needed.
func ping(url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	opts := options.Client().ApplyURI(url).
		SetServerSelectionTimeout(timeout).SetConnectTimeout(timeout)
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return "", err
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	db := client.Database("admin")
	if err := db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return "", err
	}
	var info struct {
		Version       string `bson:"version"`
		FerretVersion string `bson:"ferretdbVersion"`
	}
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return "", fmt.Errorf("buildInfo: %w", err)
	}
	if info.FerretVersion == "unknown" {
		// The embedded build carries no version.txt; report the module version we were built with.
		info.FerretVersion = moduleVersion()
	}
	if info.FerretVersion != "" {
		return fmt.Sprintf("%s (wire %s)", info.FerretVersion, info.Version), nil
	}
	return info.Version, nil
}
