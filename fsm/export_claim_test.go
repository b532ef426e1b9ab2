package fsm

// AttachRequest links a device to a request directly, as a claim would,
// so that tests can watch the imaging results the device machine reports.
func AttachRequest(f *FSM, device string, requestID int64) {
	f.stateMu.Lock()
	defer f.stateMu.Unlock()
	f.s.Devices[device].RequestID = requestID
}
