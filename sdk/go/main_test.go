package sessiond_test

import (
	"os"
	"testing"

	"github.com/sessiond/sessiond/sdk/sdktest"
)

func TestMain(m *testing.M) { os.Exit(sdktest.Main(m)) }
