package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/pullgate/pullgate/internal/config"
)

// newLogger builds the process logger from the (validated) log settings. Everything logs
// through it; nothing uses slog's default logger.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: parseLevel(cfg.Level)}
	if strings.EqualFold(cfg.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseLevel maps debug, info, warn and error (any case) to a level; validation has
// refused anything else, so the fallback is never used in practice.
func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
