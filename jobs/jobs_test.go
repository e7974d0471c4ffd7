package jobs_test

import (
	"testing"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/jobs"
)

func TestDispatchQueues(t *testing.T) {
	tests := []struct {
		channel string
		want    string
	}{
		{channels.EmailName, jobs.QueueEmail},
		{channels.WebhookName, jobs.QueueWebhook},
	}
	for _, tt := range tests {
		if got := (jobs.DispatchArgs{Channel: tt.channel}).InsertOpts().Queue; got != tt.want {
			t.Errorf("DispatchArgs{Channel: %q} queue = %q, want %q", tt.channel, got, tt.want)
		}
		if got := (jobs.DispatchBatchArgs{Channel: tt.channel}).InsertOpts().Queue; got != tt.want {
			t.Errorf("DispatchBatchArgs{Channel: %q} queue = %q, want %q", tt.channel, got, tt.want)
		}
	}
}
